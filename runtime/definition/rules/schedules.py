"""Rule: a job's `schedule` is a standard 5-field cron expression (UTC) that fires.

croniter reads the fields (names like mon and jan, ranges, steps, L and # included). Its
extensions beyond five fields (seconds, years), the @hourly shorthands and the random or
hashed R/H fields are refused: the schedule should mean the same in any cron reader. A
schedule that never fires (`0 0 31 2 *`) is refused too.
"""

from __future__ import annotations

import re
from typing import Iterator

from croniter import CroniterError, croniter

from ..model import Definition, DefinitionError

CODES = {
    "schedule.invalid": "`schedule` is not a 5-field cron expression, or one that never fires.",
}

_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_RANDOM = re.compile(r"\b[RH]\b")


def schedule_problem(text: str) -> str | None:
    parts = text.split()
    if len(parts) != len(_FIELDS):
        return f"A schedule has 5 fields ({', '.join(_FIELDS)}); this one has {len(parts)}."
    if _RANDOM.search(text):
        return "Random and hashed fields (R, H) are not supported."
    if not croniter.is_valid(text):
        return "Not a valid cron expression."
    try:
        croniter(text).get_next(float)
    except (CroniterError, ValueError, OverflowError):
        return "This schedule never fires."
    return None


def check(d: Definition) -> Iterator[DefinitionError]:
    for job in d.jobs.values():
        if job.schedule is not None:
            problem = schedule_problem(job.schedule)
            if problem:
                yield DefinitionError("schedule.invalid", f"{job.path}/schedule", f"'{job.schedule}': {problem}")
