"""Federated training across sites on Flower (Message API: ServerApp / ClientApp).

Each site keeps its recordings and its site-specific layers on its own disk; only the
shared layers of :class:`bci.decoders.fleeg.FLEEGClassifier` travel, and the server
aggregates them with Flower's FedAvg after screening out non-finite or absurd updates.

- :mod:`bci.federated.config` — federation and site TOML files
- :mod:`bci.federated.sites` — a site's data and folder, as its ClientApp sees them
- :mod:`bci.federated.strategy` — screening, minimum sites, DP, around Flower's FedAvg
- :mod:`bci.federated.client_app`, :mod:`bci.federated.server_app` — the Flower apps
- :mod:`bci.federated.simulation` — ``bci fl simulate``: N sites on one machine
- :mod:`bci.federated.deployment` — ``bci fl server`` / ``bci fl site``: SuperLink and
  SuperNodes with TLS and SuperNode authentication
- :mod:`bci.federated.certs` — ``bci fl certs``: CA, server certificate, site keys

Importing this package imports neither torch nor Flower. It does switch off Flower's
telemetry and update checks, and Ray's usage statistics, for this process and every
process it starts: Flower reads ``FLWR_TELEMETRY_ENABLED`` once, when first imported,
so this must happen before any ``import flwr``.
"""

from __future__ import annotations

import os
import sys

#: Environment that keeps Flower and Ray from calling home.
QUIET_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
    # CPU only: keep Ray from rewriting accelerator variables (and warning about it)
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


def quiet_flower() -> None:
    """Turn Flower's telemetry and update check (and Ray's usage stats) off.

    Sets :data:`QUIET_ENV` in ``os.environ`` (inherited by every SuperLink, SuperNode,
    ServerApp and ClientApp process started from here) and, should Flower already have
    been imported, its module-level telemetry switch too.
    """
    os.environ.update(QUIET_ENV)
    telemetry = sys.modules.get("flwr.supercore.telemetry")
    if telemetry is not None:
        telemetry.FLWR_TELEMETRY_ENABLED = "0"  # type: ignore[attr-defined]


quiet_flower()
