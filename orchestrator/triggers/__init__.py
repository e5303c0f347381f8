"""Cron triggers: start executions on a schedule (docs/triggers.md).

cron.py        pure: next tick in a time zone across DST, and what a pass fires (``plan``)
catalog.py     which triggers exist: the definitions' and the API's
scheduler.py   ``TriggerScheduler``: the loop, the claim (compare-and-set on the cursor),
               overlap and catch-up, events, and the API's list/put/delete
"""

from orchestrator.triggers.catalog import TriggerInfo
from orchestrator.triggers.cron import GRACE, CronError, CronSchedule, Plan, plan
from orchestrator.triggers.scheduler import TriggerScheduler

__all__ = ["GRACE", "CronError", "CronSchedule", "Plan", "TriggerInfo", "TriggerScheduler", "plan"]
