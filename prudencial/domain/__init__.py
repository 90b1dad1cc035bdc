"""The regulation's names and rules, written once, for the host (Django) and the enclave alike.

No Django here (and NumPy only where a rule needs it: the correlation matrix's eigenvalues), so
the enclave image holds this package and the host's models, services, admin and importers call
the same functions the enclave runs:

- ``market``: buckets M+0 … M+6 and their month labels, submarkets and energy types (with the
  aliases the XLSX template accepts), agent classes, their network class (CS/GE/CM) and their
  default reporting cadence;
- ``identifiers``: CNPJ (numeric and alphanumeric) and CPF check digits and normalisation,
  acronym normalisation;
- ``calendar``: the week code (YYYYMM + 3-digit sequence) and "in force on day d";
- ``parameters``: the week's parameters as the host ships them, ``check_week_parameters``, and
  the price source rule (``forward_price``);
- ``formats``: the agents' submissions (``prudencial/portfolio/v2``, ``prudencial/counterparties/v2``,
  the ``prudencial/batch/v1`` file): JSON Schemas, value-free validation, PLA, the engine's input,
  canonical JSON (docs/formats.md);
- ``sheets``: the XLSX template's layout and its cell rows ⇄ payload converters;
- ``payloads``: an item of the batch the host ships, a verdict, a week's results;
- ``errors``: ``DomainError``, the one error type, carrying the field path and the rule.
"""
