"""Seeds catalogue version 1 with every row of B3's trust-seal table
(../shared/seeds/003_69df298237167176.txt), in the rule's order, and the −10 each missed
mandatory measure costs. Measures in Portuguese as the platform shows them; the English of the
seed is in docs/seal.md."""

from django.db import migrations

# (code, line of action, measure, points, mandatory, evidence, max units, group, derivation)
ROWS = [
    ("fs-annual", "Envio de Demonstrações Financeiras",
     "Envio das Demonstrações Financeiras anuais", 0, True, "document", 1, "fs", ""),
    ("fs-half-yearly", "Envio de Demonstrações Financeiras",
     "Envio das Demonstrações Financeiras anuais e semestrais", 10, False, "document", 1, "fs", ""),
    ("fs-quarterly", "Envio de Demonstrações Financeiras",
     "Envio das Demonstrações Financeiras trimestrais (+5 cada uma)", 5, False, "document", 3, "", ""),
    ("contracts-daily", "Envio de contratos",
     "Envio diário de contratos", 10, True, "platform", 1, "contracts", "regularity"),
    ("contracts-real-time", "Envio de contratos",
     "Envio de contratos em tempo real", 20, False, "attestation", 1, "contracts", ""),
    ("audit-annual", "Auditoria independente",
     "Envio de relatório de auditoria sobre as Demonstrações Financeiras anuais", 5, False,
     "document", 1, "audit", ""),
    ("audit-half-yearly", "Auditoria independente",
     "Envio de relatório de auditoria independente sobre as Demonstrações Financeiras anuais e "
     "semestrais", 10, False, "document", 1, "audit", ""),
    ("channel-spreadsheet", "Meio de envio dos contratos",
     "Envio de contratos por arquivo eletrônico (planilha)", 0, False, "platform", 1, "channel",
     "channel_spreadsheet"),
    ("channel-api", "Meio de envio dos contratos",
     "Envio por integração de sistemas (API)", 7, False, "platform", 1, "channel", "channel_api"),
    ("discrepancy", "Envio de contratos à B3 e registro na CCEE",
     "Divergência entre todos os contratos enviados e os registrados na Câmara de Comercialização "
     "de Energia Elétrica (CCEE)", -15, False, "platform", 1, "", "discrepancy"),
    ("advisory-board", "Estrutura administrativa", "Conselho consultivo", 5, False, "document", 1,
     "", ""),
    ("board-of-directors", "Estrutura administrativa", "Conselho de administração", 5, False,
     "document", 1, "", ""),
    ("risk-policy", "Governança", "Política de gestão de riscos", 3, False, "document", 1, "", ""),
    ("risk-area", "Governança", "Área de gestão de riscos", 4, False, "attestation", 1, "", ""),
    ("internal-audit", "Governança", "Auditoria interna", 4, False, "document", 1, "", ""),
]  # fmt: skip
MISSED_MANDATORY_POINTS = -10


def seed(apps, schema_editor):
    Criterion = apps.get_model("seal", "Criterion")
    CatalogueVersion = apps.get_model("seal", "CatalogueVersion")
    created = []
    for position, (code, line, measure, points, mandatory, kind, units, group, derivation) in (
        enumerate(ROWS, start=1)
    ):
        created.append(
            Criterion.objects.create(
                code=code,
                line_of_action=line,
                measure=measure,
                points=points,
                mandatory=mandatory,
                evidence_kind=kind,
                max_units=units,
                exclusive_group=group,
                derivation=derivation,
                position=position,
            )
        )
    version = CatalogueVersion.objects.create(
        number=1,
        missed_mandatory_points=MISSED_MANDATORY_POINTS,
        note="Tabela do selo de confiança B3 para o mercado de energia elétrica",
    )
    version.criteria.set(created)


class Migration(migrations.Migration):
    dependencies = [("seal", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
