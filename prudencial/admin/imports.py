"""Large spreadsheet imports in the background: preview and import run in a Celery task, and the
admin shows their progress.

django-import-export runs its dry run (the preview) and the confirmed import inside the web
request; a file of thousands of agents or representations outlives gunicorn's timeout. For a
file with more than `background_import_rows` rows, BackgroundImportMixin stores the upload in the
import's temporary storage (the cache storage, shared by the web and the workers), records a job
and sends `prudencial.tasks.admin_import` on commit; the job page refreshes itself with the
task's progress, shows the preview's totals and errors, and a "Confirmar importação" button that
sends the same task for the real import. Smaller files keep the library's own pages.

The task runs the resource exactly as the admin would (same resource class, same user, rollback
on any invalid row); the resources resolve foreign keys once per file and write in bulk
(prudencial/resources.py). A job is visible only to the staff member who started it.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from import_export.signals import post_import

JOB_TTL = 24 * 3600
PROGRESS_EVERY = 250
MAX_ERRORS_SHOWN = 200


def _key(job_id: str) -> str:
    return f"prudencial:import-job:{job_id}"


def job_get(job_id: str) -> dict | None:
    return cache.get(_key(job_id))


def job_put(job: dict) -> None:
    cache.set(_key(job["id"]), job, JOB_TTL)


class BackgroundImportMixin:
    """Mixed into an ImportExportMixin admin (see the module docstring)."""

    background_import_rows = 1000
    tmp_storage_class = "import_export.tmp_storages.CacheStorage"
    import_job_template = "admin/prudencial/import_job.html"

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "import/job/<uuid:job_id>/",
                self.admin_site.admin_view(self.import_job_view),
                name=f"{info[0]}_{info[1]}_import_job",
            ),
            path(
                "import/job/<uuid:job_id>/confirm/",
                self.admin_site.admin_view(self.import_job_confirm),
                name=f"{info[0]}_{info[1]}_import_job_confirm",
            ),
            *super().get_urls(),
        ]

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and self.has_import_permission(request):
            form = self.create_import_form(request)
            if form.is_valid():
                job = self._start_background_preview(request, form)
                if job is not None:
                    return HttpResponseRedirect(self._job_url(job))
        return super().import_action(request, **kwargs)

    def _start_background_preview(self, request: HttpRequest, form: Any) -> dict | None:
        """A job for a large file (None: the library's pages handle it)."""
        format_index = int(form.cleaned_data["format"])
        input_format = self.get_import_formats()[format_index]()
        if not input_format.is_binary():
            input_format.encoding = self.from_encoding
        import_file = form.cleaned_data["import_file"]
        tmp_storage = self.write_to_tmp_storage(import_file, input_format)
        try:
            rows = len(input_format.create_dataset(tmp_storage.read()))
        except Exception:  # unreadable: the library's page says so
            tmp_storage.remove()
            return None
        if rows <= self.background_import_rows:
            tmp_storage.remove()
            return None
        resource_index = int(form.cleaned_data.get("resource") or 0)
        job = {
            "id": str(uuid.uuid4()),
            "model": self.opts.label,
            "resource": resource_index,
            "format": format_index,
            "tmp_name": tmp_storage.name,
            "file_name": import_file.name,
            "user": request.user.pk,
            "phase": "preview",
            "state": "queued",
            "done": 0,
            "total": rows,
            "totals": {},
            "errors": [],
            "created": timezone.now().isoformat(),
        }
        job_put(job)
        self._send(job)
        return job

    @staticmethod
    def _send(job: dict) -> None:
        from prudencial.tasks import admin_import

        transaction.on_commit(lambda: admin_import.delay(job["id"]))

    def _job_url(self, job: dict) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_import_job",
            args=[job["id"]],
            current_app=self.admin_site.name,
        )

    def _own_job(self, request: HttpRequest, job_id: Any) -> dict:
        if not self.has_import_permission(request):
            raise PermissionDenied
        job = job_get(str(job_id))
        if job is None or job["model"] != self.opts.label:
            raise Http404(_("Importação não encontrada (ou expirada)."))
        if job["user"] != request.user.pk:
            raise PermissionDenied
        return job

    def import_job_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        job = self._own_job(request, job_id)
        running = job["state"] in ("queued", "running")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Importação de %(name)s") % {"name": self.opts.verbose_name_plural},
            "opts": self.opts,
            "job": job,
            "running": running,
            "percent": round(100 * job["done"] / job["total"]) if job["total"] else 100,
            "can_confirm": self._confirmable(job),
            "confirm_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_import_job_confirm",
                args=[job["id"]],
                current_app=self.admin_site.name,
            ),
            "changelist_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                current_app=self.admin_site.name,
            ),
        }
        return TemplateResponse(request, self.import_job_template, context)

    @staticmethod
    def _confirmable(job: dict) -> bool:
        return job["phase"] == "preview" and job["state"] == "done" and not job["errors"]

    def import_job_confirm(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self._own_job(request, job_id)
        if self._confirmable(job):
            job.update(phase="import", state="queued", done=0, totals={}, errors=[])
            job_put(job)
            self._send(job)
        return HttpResponseRedirect(self._job_url(job))


def run_import_job(job_id: str) -> dict | None:
    """The task's work: the preview (dry run) or the import of a job's file, as the admin runs
    it, with the progress written to the job every PROGRESS_EVERY rows. Idempotent for a
    redelivered task: a job already done is left as it is."""
    job = job_get(job_id)
    if job is None or job["state"] not in ("queued", "running"):
        return job
    model = apps.get_model(job["model"])
    model_admin = admin.site._registry[model]
    user = get_user_model().objects.get(pk=job["user"])
    input_format = model_admin.get_import_formats()[job["format"]](
        encoding=model_admin.from_encoding
    )
    storage = model_admin.get_tmp_storage_class()(
        name=job["tmp_name"],
        encoding=None if input_format.is_binary() else model_admin.from_encoding,
        read_mode=input_format.get_read_mode(),
    )
    job.update(state="running", done=0)
    job_put(job)
    dry_run = job["phase"] == "preview"
    base = model_admin.resource_classes[job["resource"]]

    class Tracked(base):
        def after_import_row(self, row: Any, row_result: Any, **kwargs: Any) -> None:
            super().after_import_row(row, row_result, **kwargs)
            number = kwargs.get("row_number", 0)
            if number % PROGRESS_EVERY == 0:
                job["done"] = number
                job_put(job)

    Tracked.__name__ = base.__name__
    try:
        dataset = input_format.create_dataset(storage.read())
        result = Tracked().import_data(
            dataset,
            dry_run=dry_run,
            raise_errors=False,
            use_transactions=True,
            rollback_on_validation_errors=True,
            collect_failed_rows=False,
            retain_instance_in_row_result=not dry_run,
            user=user,
            file_name=job["file_name"],
        )
    except Exception as exc:  # a file that cannot be read: the job says why
        job.update(state="failed", errors=[[0, [str(exc)[:500]]]])
        job_put(job)
        storage.remove()
        return job
    errors: list[list] = [[0, [str(e.error)]] for e in result.base_errors]
    errors += [[number, [str(e.error) for e in row]] for number, row in result.row_errors()]
    for invalid in result.invalid_rows:
        errors.append(
            [
                invalid.number,
                [
                    f"{field}: {m}" if field != "__all__" else str(m)
                    for field, messages in invalid.error_dict.items()
                    for m in messages
                ],
            ]
        )
    errors.sort(key=lambda e: e[0])
    job.update(
        state="done",
        done=job["total"],
        totals={k: v for k, v in result.totals.items() if v},
        errors=errors[:MAX_ERRORS_SHOWN],
        error_count=len(errors),
    )
    if not dry_run or errors:
        storage.remove()
    if not dry_run and not errors:
        model_admin.generate_log_entries(result, SimpleNamespace(user=user))
        post_import.send(sender=None, model=model)
    job_put(job)
    return job
