"""Leading indicators, anomaly detection, plain-language alerts, history, weekly report, churn risk.

```python
from stoic.signals import Signals

signals = Signals(interval=60.0, db="signals.db")
signals.observe_start("eu-west", ok=True, account="acct-17")
signals.view(window=3600.0)        # series + predictions + alerts, JSON-ready
```
"""

from stoic.signals.alerts import Alert
from stoic.signals.burnrate import DEFAULT_RULES, BurnRate, BurnRateRule, BurnWindow
from stoic.signals.churn import Account, AccountRisk, ChurnRisk, load_accounts
from stoic.signals.context import EVENT_KINDS, ContextEvent, likely_cause
from stoic.signals.detector import Detection, Detector
from stoic.signals.forecast import DailyPattern, Forecast, Holt, HoltWinters
from stoic.signals.history import History, Incident
from stoic.signals.hub import Signals
from stoic.signals.indicators import ERROR_RATE, REBUFFER_RATIO, SPS, Indicators, Point
from stoic.signals.ingest import IngestError
from stoic.signals.ownership import Ownership, Team
from stoic.signals.webhook import AlertRouter, Delivery, WebhookReceiver, alertmanager_payload

__all__ = [
    "DEFAULT_RULES",
    "ERROR_RATE",
    "EVENT_KINDS",
    "REBUFFER_RATIO",
    "SPS",
    "Account",
    "AccountRisk",
    "Alert",
    "AlertRouter",
    "BurnRate",
    "BurnRateRule",
    "BurnWindow",
    "ChurnRisk",
    "ContextEvent",
    "DailyPattern",
    "Delivery",
    "Detection",
    "Detector",
    "Forecast",
    "History",
    "Holt",
    "HoltWinters",
    "Incident",
    "Indicators",
    "IngestError",
    "Ownership",
    "Point",
    "Signals",
    "Team",
    "WebhookReceiver",
    "alertmanager_payload",
    "likely_cause",
    "load_accounts",
]
