"""The agents' web pages of the leverage factor, mounted at /fator/ (namespace "leverage")."""

from django.urls import path

from prudencial.closing import agent_views

app_name = "leverage"

urlpatterns = [
    path("", agent_views.agent_list, name="agents"),
    path("<int:agent_id>/historico/", agent_views.history, name="history"),
    path("<int:agent_id>/<str:week_code>/", agent_views.result_detail, name="result"),
    path("<int:agent_id>/<str:week_code>/enviar/", agent_views.result_send, name="send"),
    path("<int:agent_id>/<str:week_code>/cancelar/", agent_views.result_cancel, name="cancel"),
]
