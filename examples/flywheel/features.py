"""A customer row (strings from the CSV) → the numbers the model sees."""

import math

# ---------------------------------------------------------------------------
# Feature choices (experiments change these)

LOG_DAYS = 0  # 1: log-scale days since login (the long tail of inactive users)
INTERACTIONS = 0  # 1: add support tickets x inactivity
TENURE_SCALE = 12.0  # months per unit of tenure

# ---------------------------------------------------------------------------


def featurize(row):
    days = float(row["days_since_login"])
    tickets = float(row["support_tickets"])
    values = [
        math.log1p(days) if LOG_DAYS else days / 30.0,
        tickets / 3.0,
        float(row["tenure_months"]) / TENURE_SCALE,
        float(row["monthly_spend"]) / 50.0,
        float(row["discount"]),
        1.0 if row["plan"] == "basic" else 0.0,
        1.0 if row["plan"] == "team" else 0.0,
    ]
    if INTERACTIONS:
        values.append(tickets * days / 100.0)
    return values
