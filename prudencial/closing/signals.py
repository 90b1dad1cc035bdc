"""Signals of the weekly closing. Receivers (alerts) connect to them; closing never imports them.

- ``closing_done(closing=)``: sent after the transaction that makes a closing current commits.
- ``closing_delayed(closing=)``: sent after a closing is marked delayed (the enclave stayed
  unavailable past CLOSING_ENCLAVE_DELAY_MINUTES): staff are told; no figure is invented.
- ``closing_failed(closing=)``: sent after a closing moves to ``failed`` (no parameters, a
  week that cannot close, verdicts that no longer verify): staff are told, since nothing
  restarts a failed closing but them.
"""

from django.dispatch import Signal

closing_done = Signal()
closing_delayed = Signal()
closing_failed = Signal()
