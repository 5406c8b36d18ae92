"""A front desk's day through a client generated from the served OpenAPI document.

`cargo xtask fuzz` generates the client with openapi-python-client (pinned, in the fuzz venv)
from the running server's `/api/v1/openapi.json`, puts it on PYTHONPATH as `clinicflow_client`
and runs this script, with the server and the seeded admin in CLINICFLOW_FUZZ_BASE_URL,
CLINICFLOW_FUZZ_EMAIL and CLINICFLOW_FUZZ_PASSWORD. The generated code is used as generated:
if the document misdescribes an answer or a body, a call here fails and so does the run.

The walk: log in, register a practitioner with a weekly schedule and a patient, read the
practitioner's free slots, book the first one and cancel it, book one that starts now and move
it through confirm, check-in, start and complete, and record a no-show for one that began an
hour ago; every move is sent without a body, as the document allows.
"""

import datetime
import os
import sys
import uuid

from clinicflow_client import AuthenticatedClient, Client
from clinicflow_client.api.appointment import (
    book_appointment,
    get_appointment,
    move_appointment,
)
from clinicflow_client.api.auth import login, me
from clinicflow_client.api.patient import create_patient, get_patient
from clinicflow_client.api.practitioner import (
    create_practitioner,
    practitioner_slots,
    put_schedule,
)
from clinicflow_client.models import (
    AppointmentOut,
    AppointmentStatus,
    BookIn,
    LoginIn,
    PatientIn,
    PatientOut,
    PractitionerIn,
    PractitionerOut,
    RuleDto,
    ScheduleDto,
    Sex,
    SlotsOut,
    StatusMove,
    TokenOut,
    Urgency,
    Weekday,
)

BASE_URL = os.environ["CLINICFLOW_FUZZ_BASE_URL"]
EMAIL = os.environ["CLINICFLOW_FUZZ_EMAIL"]
PASSWORD = os.environ["CLINICFLOW_FUZZ_PASSWORD"]


def expect(response, status, kind, what):
    """The parsed answer of `response`, which must have `status` and parse as `kind`."""
    if response.status_code != status or not isinstance(response.parsed, kind):
        raise SystemExit(
            f"walkthrough: {what}: expected {status} {kind.__name__}, got "
            f"{int(response.status_code)} {response.content[:500]!r}"
        )
    print(f"walkthrough: {what}: {int(response.status_code)}")
    return response.parsed


def now_minute(offset_minutes):
    """A whole minute `offset_minutes` from now, in UTC."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    return now + datetime.timedelta(minutes=offset_minutes)


def book(client, body, what):
    return expect(
        book_appointment.sync_detailed(
            client=client, body=body, idempotency_key=str(uuid.uuid4())
        ),
        201,
        AppointmentOut,
        what,
    )


def moved(client, appointment, move, status):
    """Moves `appointment` without a body and checks its new status."""
    answer = expect(
        move_appointment.sync_detailed(id=appointment.id, action=move, client=client),
        200,
        AppointmentOut,
        f"{move.value} without a body",
    )
    if answer.status != status:
        raise SystemExit(f"walkthrough: {move.value}: status {answer.status}, not {status}")
    return answer


def main():
    anonymous = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    tokens = expect(
        login.sync_detailed(client=anonymous, body=LoginIn(email=EMAIL, password=PASSWORD)),
        200,
        TokenOut,
        "login",
    )
    client = AuthenticatedClient(
        base_url=BASE_URL, token=tokens.access_token, raise_on_unexpected_status=True
    )
    me.sync_detailed(client=client)

    practitioner = expect(
        create_practitioner.sync_detailed(
            client=client,
            body=PractitionerIn(
                given_name="Walk",
                family_name="Through",
                specialties=["general_practice"],
                slot_minutes=30,
                buffer_minutes=0,
            ),
        ),
        201,
        PractitionerOut,
        "create practitioner",
    )
    rules = [RuleDto(weekday=day, start="08:00", end="16:00") for day in Weekday]
    put_schedule.sync_detailed(
        id=practitioner.id,
        client=client,
        body=ScheduleDto(rules=rules, valid_from=now_minute(-2 * 24 * 60).date()),
    )

    patient = expect(
        create_patient.sync_detailed(
            client=client,
            body=PatientIn(
                given_name="Ada",
                family_name="Lovelace",
                birth_date=datetime.date(1985, 12, 10),
                sex=Sex.FEMALE,
                phone="+4915112345678",
                email="ada@example.org",
            ),
            idempotency_key=str(uuid.uuid4()),
        ),
        201,
        PatientOut,
        "create patient",
    )
    expect(
        get_patient.sync_detailed(id=patient.id, client=client),
        200,
        PatientOut,
        "read the patient",
    )

    today = datetime.datetime.now(datetime.timezone.utc).date()
    slots = expect(
        practitioner_slots.sync_detailed(
            id=practitioner.id,
            client=client,
            from_=today,
            to=today + datetime.timedelta(days=7),
        ),
        200,
        SlotsOut,
        "read slots",
    )
    if not slots.slots:
        raise SystemExit("walkthrough: a week of 08:00-16:00 rules offers no slot")
    first = book(
        client,
        BookIn(
            patient_id=patient.id,
            practitioner_id=practitioner.id,
            starts_at=slots.slots[0].starts_at,
            urgency=Urgency.ROUTINE,
            reason="check-up",
        ),
        "book the first free slot",
    )
    moved(client, first, StatusMove.CANCEL, AppointmentStatus.CANCELLED)

    # Starts now: overbooked, since "now" need not be a free slot of the schedule.
    visit = book(
        client,
        BookIn(
            patient_id=patient.id,
            practitioner_id=practitioner.id,
            starts_at=now_minute(2),
            duration_minutes=15,
            overbook=True,
        ),
        "book a visit now",
    )
    for move, status in [
        (StatusMove.CONFIRM, AppointmentStatus.CONFIRMED),
        (StatusMove.CHECK_IN, AppointmentStatus.CHECKED_IN),
        (StatusMove.START, AppointmentStatus.IN_PROGRESS),
        (StatusMove.COMPLETE, AppointmentStatus.COMPLETED),
    ]:
        visit = moved(client, visit, move, status)

    missed = book(
        client,
        BookIn(
            patient_id=patient.id,
            practitioner_id=practitioner.id,
            starts_at=now_minute(-60),
            duration_minutes=15,
            overbook=True,
        ),
        "book a visit that began an hour ago",
    )
    moved(client, missed, StatusMove.NO_SHOW, AppointmentStatus.NO_SHOW)
    expect(
        get_appointment.sync_detailed(id=missed.id, client=client),
        200,
        AppointmentOut,
        "read the missed visit",
    )
    print("walkthrough: passed")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the generated client fails the run
        print(f"walkthrough: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        raise
