"""The labeled outcomes: one row per customer, `churned` 1 when they left. Deterministic.

    python make_data.py                 # data/customers.csv with the first 1500 customers
    python make_data.py --new-rows 200  # append 200 newly labeled customers (the nightly step)

A stand-in for your own export (CRM, ticket system, billing): the columns and the label are
what matter. Frozen: listed in `harness`, so experiments cannot change the data or the
split, and new rows change the harness hash, which starts a new baseline.
"""

import argparse
import csv
import math
import random
from pathlib import Path

PATH = Path("data/customers.csv")
COLUMNS = ["customer_id", "plan", "tenure_months", "monthly_spend", "support_tickets",
           "days_since_login", "discount", "churned"]
PLANS = ("basic", "pro", "team")


def customer(customer_id):
    """One customer and whether they churned; the same id always gives the same row."""
    rng = random.Random(f"customer-{customer_id}")
    plan = rng.choices(PLANS, weights=(5, 3, 2))[0]
    tenure = rng.randint(1, 60)
    spend = round({"basic": 12, "pro": 39, "team": 99}[plan] * rng.uniform(0.8, 1.6), 2)
    tickets = min(12, int(rng.expovariate(0.6)))
    login = min(180, int(rng.expovariate(1 / 14)))
    discount = int(rng.random() < 0.25)
    # The hidden rule: inactivity and support pain drive churn, tenure and team plans hold
    # customers; with interactions and noise, so no single feature tells it all.
    logit = (-2.6 + 0.06 * login + 0.45 * tickets - 0.045 * tenure + 0.9 * (plan == "basic")
             - 0.8 * (plan == "team") + 0.6 * discount * (tenure < 6) + 0.02 * tickets * login / 10
             + rng.gauss(0, 0.5))
    churned = int(rng.random() < 1 / (1 + math.exp(-logit)))
    return [customer_id, plan, tenure, spend, tickets, login, discount, churned]


def existing_ids(path):
    if not path.exists():
        return 0
    with open(path, newline="") as handle:
        return sum(1 for _ in handle) - 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-rows", type=int, default=0, help="append this many newly labeled rows")
    args = parser.parse_args()
    PATH.parent.mkdir(exist_ok=True)
    start = existing_ids(PATH)
    if args.new_rows <= 0 and start:
        print(f"{PATH} already has {start} rows; use --new-rows N to append")
        return
    count = args.new_rows if start else (args.new_rows or 1500)
    with open(PATH, "a", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if not start:
            writer.writerow(COLUMNS)
        for customer_id in range(start + 1, start + count + 1):
            writer.writerow(customer(customer_id))
    print(f"{PATH}: {start + count} labeled rows ({count} new)")


if __name__ == "__main__":
    main()
