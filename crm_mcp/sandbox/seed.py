"""Deterministic demo data for the embedded sandbox CRM.

``build_seed()`` returns a fresh ``dict[str, list[dict]]`` keyed by resource (``users``,
``pipelines``, ``companies``, ``contacts``, ``leads``, ``opportunities``, ``activities``,
``notes``, ``custom_object_schemas``, ``custom_objects``). Every record is a JSON-ready dict in
the RESPONSE shape of the matching ``components/schemas`` entry of the Apideck CRM OpenAPI
contract (read-only fields such as ``id``/``created_at``/``updated_at``/``created_by``/
``updated_by`` included where the schema has them; fields that would be null or empty are left
out). ``custom_objects`` records carry one extra key, ``object_id``, naming their schema id; the
storage layer strips it.

The data is built from ``random.Random(20261127)`` only (never the global ``random``, never the
clock): two calls with the same ``now`` return equal data. Timestamps are ISO 8601 UTC
(``YYYY-MM-DDTHH:MM:SS.000Z``; the millisecond form is what ``Lead.created_at`` requires)
counted back from "now" and spread over the preceding ~18 months. "Now" is ``BASE_TIME``
(``2026-11-01T09:00:00Z``, the dates below) moved by whole days to the reference time given to
``build_seed(now)`` (see ``seed_shift``); the sandbox passes the time it seeds a consumer, and
tests pin it. 64 activities of 28 companies fall in the 30 days before "now" (4 of Acme's 18),
the others before (or after: upcoming meetings and tasks). The only timestamps after
"now" are the ``activity_datetime``/``start_datetime``/``end_datetime`` of a few upcoming
meetings and tasks (``done: false``), and the ``close_date`` of open opportunities, which is the
expected close date. Dates are ``YYYY-MM-DD``. Every email address and website uses a
``.example`` domain; phone numbers are in the fictional 555-01xx (and UK 020 7946 0xxx) ranges.

Ids are short prefixed strings: ``usr_01``, ``pip_1`` (stages ``stg_nb_*``/``stg_rn_*``),
``com_001``, ``con_0001``, ``lea_001``, ``opp_001``, ``act_0001``, ``not_001``,
``cos_projects``, ``cob_001``. Companies, contacts, activities and notes are numbered in order of
creation (activities by ``created_at``).

Anchors (also in ``ANCHORS``) that other tests rely on:

* company ``com_001`` "Acme Corporation" (domain ``acme.example``, San Francisco, owner
  ``usr_02``) with 8 contacts, 4 open opportunities in 4 different stages (``opp_001``
  Proposal, ``opp_002`` Negotiation, ``opp_003`` Discovery in "New Business"; ``opp_005``
  Renewal Due in "Renewals") plus ``opp_004`` Closed Won, 18 activities and 8 notes;
* contact ``con_0001`` "Jane Doe", "VP of Operations" at Acme, ``jane.doe@acme.example``,
  ``+1 415 555 0101``; she is the primary contact of ``opp_001``;
* lead ``lea_001`` "Tom Baker" (Harborview Logistics);
* pipelines ``pip_1`` "New Business" (6 stages) and ``pip_2`` "Renewals" (4 stages);
* custom object schema ``cos_projects`` "Project"; ``cob_001`` is Acme's project.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["ANCHORS", "BASE_TIME", "RESOURCES", "SEED", "build_seed", "seed_shift"]

SEED = 20261127
BASE_TIME = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)
RESOURCES = (
    "users",
    "pipelines",
    "companies",
    "contacts",
    "leads",
    "opportunities",
    "activities",
    "notes",
    "custom_object_schemas",
    "custom_objects",
)

ANCHORS: dict[str, str] = {
    "company_id": "com_001",
    "company_name": "Acme Corporation",
    "company_domain": "acme.example",
    "company_owner_id": "usr_02",
    "contact_id": "con_0001",
    "contact_name": "Jane Doe",
    "contact_title": "VP of Operations",
    "contact_email": "jane.doe@acme.example",
    "contact_phone": "+1 415 555 0101",
    "lead_id": "lea_001",
    "lead_name": "Tom Baker",
    "open_opportunity_id": "opp_001",
    "won_opportunity_id": "opp_004",
    "renewal_opportunity_id": "opp_005",
    "new_business_pipeline_id": "pip_1",
    "renewals_pipeline_id": "pip_2",
    "custom_object_schema_id": "cos_projects",
    "custom_object_id": "cob_001",
}

Record = dict[str, Any]

# --------------------------------------------------------------------------- static tables

# id, first, last, title, department, division
_USERS = (
    ("usr_01", "Olivia", "Bennett", "VP of Sales", "Sales", "North America"),
    ("usr_02", "Marcus", "Reid", "Senior Account Executive", "Sales", "West"),
    ("usr_03", "Priya", "Shah", "Account Executive", "Sales", "West"),
    ("usr_04", "Daniel", "Okafor", "Account Executive", "Sales", "East"),
    ("usr_05", "Sofia", "Alvarez", "Senior Account Executive", "Sales", "East"),
    ("usr_06", "Kenji", "Watanabe", "Account Executive", "Sales", "Central"),
    ("usr_07", "Hannah", "Schulz", "Sales Development Representative", "Sales", "North America"),
    ("usr_08", "Diego", "Ramirez", "Sales Development Representative", "Sales", "North America"),
    ("usr_09", "Grace", "Liu", "Customer Success Manager", "Customer Success", "North America"),
    ("usr_10", "Samuel", "Adeyemi", "Customer Success Manager", "Customer Success", "North America"),
    ("usr_11", "Rachel", "Goldberg", "Sales Director", "Sales", "International"),
    ("usr_12", "Ethan", "Novak", "Sales Operations Manager", "Sales Operations", "North America"),
)
_ACCOUNT_EXECS = ("usr_02", "usr_03", "usr_04", "usr_05", "usr_06", "usr_11")
_SDRS = ("usr_07", "usr_08")
_CSMS = ("usr_09", "usr_10")
_ORG_DOMAIN = "sandbox-crm.example"

# (pipeline id, name, [(stage id, name, value, win probability)])
_PIPELINES = (
    (
        "pip_1",
        "New Business",
        (
            ("stg_nb_qualification", "Qualification", "QUALIFICATION", 10),
            ("stg_nb_discovery", "Discovery", "DISCOVERY", 25),
            ("stg_nb_proposal", "Proposal", "PROPOSAL", 50),
            ("stg_nb_negotiation", "Negotiation", "NEGOTIATION", 75),
            ("stg_nb_closed_won", "Closed Won", "CLOSED_WON", 100),
            ("stg_nb_closed_lost", "Closed Lost", "CLOSED_LOST", 0),
        ),
    ),
    (
        "pip_2",
        "Renewals",
        (
            ("stg_rn_renewal_due", "Renewal Due", "RENEWAL_DUE", 60),
            ("stg_rn_negotiation", "Renewal Negotiation", "RENEWAL_NEGOTIATION", 80),
            ("stg_rn_renewed", "Renewed", "RENEWED", 100),
            ("stg_rn_churned", "Churned", "CHURNED", 0),
        ),
    ),
)
_WON_STAGES = {"stg_nb_closed_won", "stg_rn_renewed"}
_LOST_STAGES = {"stg_nb_closed_lost", "stg_rn_churned"}

# (city, state or None, postal code, ISO country, phone area prefix)
_CITIES = (
    ("San Francisco", "CA", "94105", "US", "+1 415"),
    ("New York", "NY", "10001", "US", "+1 212"),
    ("Austin", "TX", "78701", "US", "+1 512"),
    ("Chicago", "IL", "60601", "US", "+1 312"),
    ("Seattle", "WA", "98101", "US", "+1 206"),
    ("Boston", "MA", "02110", "US", "+1 617"),
    ("Denver", "CO", "80202", "US", "+1 303"),
    ("Atlanta", "GA", "30303", "US", "+1 404"),
    ("Los Angeles", "CA", "90017", "US", "+1 213"),
    ("Miami", "FL", "33131", "US", "+1 305"),
    ("Portland", "OR", "97204", "US", "+1 503"),
    ("Minneapolis", "MN", "55402", "US", "+1 612"),
    ("Philadelphia", "PA", "19103", "US", "+1 215"),
    ("Phoenix", "AZ", "85004", "US", "+1 602"),
    ("Nashville", "TN", "37203", "US", "+1 615"),
    ("Raleigh", "NC", "27601", "US", "+1 919"),
    ("San Diego", "CA", "92101", "US", "+1 619"),
    ("Salt Lake City", "UT", "84111", "US", "+1 801"),
    ("Pittsburgh", "PA", "15222", "US", "+1 412"),
    ("Columbus", "OH", "43215", "US", "+1 614"),
    ("Toronto", "ON", "M5H 2N2", "CA", "+1 416"),
    ("Vancouver", "BC", "V6C 1T2", "CA", "+1 604"),
    ("London", None, "EC2A 4NE", "GB", "+44 20"),
)
_CITY_WEIGHTS = (9, 9, 5, 6, 6, 6, 5, 4, 5, 3, 3, 3, 3, 3, 2, 2, 3, 2, 2, 2, 3, 2, 3)
_STREETS = (
    "Market Street",
    "Main Street",
    "Broadway",
    "Commerce Drive",
    "Innovation Way",
    "Park Avenue",
    "Harbor Boulevard",
    "Lake Street",
    "Industrial Parkway",
    "Technology Drive",
    "Elm Street",
    "Oak Avenue",
    "Washington Street",
    "Madison Avenue",
    "Pine Street",
    "Riverside Drive",
)

_PREFIXES = (
    "Redwood", "Ironclad", "Brightpath", "Cobalt", "Evergreen", "Granite", "Horizon", "Lumen",
    "Meridian", "Nimbus", "Orion", "Silverline", "Sterling", "Trident", "Vertex", "Keystone",
    "Bluewater", "Clearwater", "Crescent", "Falcon", "Juniper", "Lakeshore", "Maple Ridge",
    "Northstar", "Oakline", "Pioneer", "Riverbend", "Sagebrush", "Skyline", "Stonebridge",
    "Sunrise", "Tidewater", "Westfield", "Wildflower", "Zenith", "Beacon", "Cedar Point",
    "Copperleaf", "Driftwood", "Aurora", "Atlas", "Pacific Crest", "Highland", "Summit",
    "Bayside", "Foxglove", "Greystone", "Hollow Creek", "Ironwood", "Kestrel", "Larkspur",
    "Monarch", "Nautilus", "Oakmont", "Prairie", "Quarry Hill", "Rockport", "Silver Lake",
    "Twin Pines", "Union Square", "Harborview",
)  # fmt: skip
# (word in the name, industry, what they do)
_INDUSTRIES = (
    ("Logistics", "Transportation & Logistics", "freight, warehousing and last-mile delivery"),
    ("Analytics", "Information Technology", "data analytics software for mid-size enterprises"),
    ("Health", "Healthcare", "outpatient clinics and digital health services"),
    ("Foods", "Food & Beverage", "packaged foods sold through national grocery chains"),
    ("Robotics", "Industrial Automation", "warehouse and factory robotics"),
    ("Energy", "Energy", "commercial solar and battery storage projects"),
    ("Financial", "Financial Services", "commercial lending and payment processing"),
    ("Biotech", "Biotechnology", "contract research for drug discovery"),
    ("Software", "Software", "workflow software for field-service teams"),
    ("Manufacturing", "Manufacturing", "precision-machined components"),
    ("Media", "Media & Entertainment", "video production and streaming distribution"),
    ("Retail", "Retail", "specialty retail stores and e-commerce"),
    ("Insurance", "Insurance", "commercial property and liability insurance"),
    ("Construction", "Construction", "commercial and mixed-use construction"),
    ("Telecom", "Telecommunications", "business fiber and wireless connectivity"),
    ("Pharma", "Pharmaceuticals", "generic and specialty pharmaceuticals"),
    ("Aerospace", "Aerospace & Defense", "aircraft interior components"),
    ("Hospitality", "Hospitality", "boutique hotels and event venues"),
    ("Learning", "Education", "online learning programs for professionals"),
    ("Security", "Cybersecurity", "managed detection and response services"),
    ("Agritech", "Agriculture", "precision agriculture sensors and analytics"),
    ("Motors", "Automotive", "electric-vehicle drivetrain parts"),
)
_COMPANY_SUFFIXES = ("Inc.", "Group", "LLC", "Co.", "Corp.", "Partners", "Holdings", "", "", "")
# (employees, revenue range in $M, ownership)
_SIZES = (
    ("11-50", (2, 9)),
    ("51-200", (8, 40)),
    ("201-500", (30, 120)),
    ("501-1000", (90, 300)),
    ("1001-5000", (250, 1400)),
    ("5001-10000", (1200, 4000)),
    ("10000+", (3500, 18000)),
)
_SIZE_WEIGHTS = (8, 14, 12, 8, 6, 3, 2)

_FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "Michael", "Linda", "David", "Elizabeth", "William",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Christopher", "Karen",
    "Charles", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Steven",
    "Emily", "Andrew", "Michelle", "Joshua", "Amanda", "Kevin", "Melissa", "Brian", "Stephanie",
    "Aisha", "Mohammed", "Wei", "Mei", "Hiroshi", "Yuki", "Arjun", "Ananya", "Carlos", "Lucia",
    "Mateo", "Valentina", "Olumide", "Chiamaka", "Lars", "Ingrid", "Pierre", "Chloé", "José",
    "Fatima", "Omar", "Nadia", "Sean", "Siobhan", "Tariq", "Leila", "Min-jun", "Seo-yeon",
    "Dmitri", "Katarina", "Renée", "Kwame", "Abena", "Rafael",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Adams", "Nelson", "Hill",
    "Campbell", "Mitchell", "Patel", "Nguyen", "Kim", "Chen", "Wang", "Singh", "Kumar", "Tanaka",
    "Sato", "Müller", "Fischer", "Rossi", "Dubois", "Kowalski", "Novak", "Jensen", "Larsen",
    "O'Connor", "Murphy", "Okafor", "Mensah", "Haddad", "Rahman", "Silva", "Costa", "Petrov",
    "Fernandes", "Yilmaz", "Park", "Choi", "Nakamura", "Sullivan",
)  # fmt: skip
# (title, department) -- distinct titles per company
_CONTACT_TITLES = (
    ("Chief Executive Officer", "Executive"),
    ("Chief Financial Officer", "Finance"),
    ("Chief Technology Officer", "Engineering"),
    ("Chief Operating Officer", "Executive"),
    ("VP of Engineering", "Engineering"),
    ("VP of Operations", "Operations"),
    ("VP of Marketing", "Marketing"),
    ("Director of IT", "IT"),
    ("IT Manager", "IT"),
    ("Head of Procurement", "Procurement"),
    ("Procurement Manager", "Procurement"),
    ("Marketing Manager", "Marketing"),
    ("Operations Manager", "Operations"),
    ("Director of Operations", "Operations"),
    ("Data Engineer", "Engineering"),
    ("Head of Data", "Data"),
    ("Finance Manager", "Finance"),
    ("Controller", "Finance"),
    ("HR Director", "Human Resources"),
    ("Sales Operations Manager", "Sales"),
    ("Product Manager", "Product"),
    ("Security Architect", "IT"),
    ("Customer Success Lead", "Customer Success"),
    ("Solutions Architect", "Engineering"),
)
_LEAD_SOURCES = (
    "Website",
    "Referral",
    "Trade Show",
    "Cold Call",
    "Webinar",
    "Partner",
    "LinkedIn",
    "Inbound Email",
)
_CONTACT_TAGS = ("decision-maker", "champion", "influencer", "technical", "billing", "newsletter")
_CONTACT_ROLES = (
    "Internal champion",
    "Economic buyer",
    "Technical evaluator",
    "Signs off on security reviews",
    "Prefers email over calls",
    "Joined from a competitor last year",
)
_PRODUCTS = (
    "Analytics Platform",
    "Data Pipeline",
    "Security Suite",
    "Customer Portal",
    "Workflow Automation",
    "Mobile SDK",
    "Premium Support",
    "Integration Hub",
    "Reporting Add-on",
    "Cloud Storage",
)
_COMPETITORS = ("Quantix", "Veltrix", "Cloudora", "Stackwise")
_WON_REASONS = (
    "Best product fit",
    "Strong executive sponsor",
    "Competitive pricing",
    "Integration coverage",
    "Existing relationship",
)
_LOSS_REASONS = ("Price", "Chose a competitor", "No budget", "Project postponed", "Missing features")
_CHURN_REASONS = ("Budget cuts", "Moved to a competitor", "Company acquired", "Low adoption")
_LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified")
_LEAD_STATUS_WEIGHTS = (28, 30, 24, 18)
_LEAD_STATUS_AGE_DAYS = {
    "new": (1, 30),
    "contacted": (7, 120),
    "qualified": (20, 300),
    "unqualified": (20, 520),
}
_LEAD_TAGS = ("webinar-2026", "trade-show", "inbound", "outbound", "event-follow-up")
_UNQUALIFIED_REASONS = (
    "No budget this fiscal year.",
    "Too small for our offering.",
    "Already under contract with a competitor until 2028.",
    "Student research project, not a buyer.",
)

_ACTIVITY_TYPES = ("call", "meeting", "email", "task")
_ACTIVITY_TYPE_WEIGHTS = (30, 22, 30, 18)
_CALL_TEMPLATES = (
    ("Discovery call with {contact}", "Walked through current tooling and pain points; {first} wants a demo."),
    ("Follow-up call: {product}", "Answered open questions on {product} pricing and rollout timeline."),
    ("Pricing call with {contact}", "Reviewed the quote for {product}; {first} will take it to finance."),
    ("Check-in call with {contact}", "Quick check-in; adoption is steady and no blockers were raised."),
    ("Reference call for {company}", "Connected {first} with a reference customer in the same industry."),
)  # fmt: skip
_MEETING_TEMPLATES = (
    ("{product} demo for {company}", "Live demo of {product} for {first} and the evaluation team."),
    ("Quarterly business review — {company}", "Reviewed usage, support tickets and goals for next quarter."),
    ("Onsite workshop with {company}", "Mapped requirements for {product} with the operations team."),
    ("Negotiation meeting: {product}", "Discussed contract terms, payment schedule and discount request."),
    ("Kickoff meeting with {company}", "Agreed on the implementation plan and named owners on both sides."),
)  # fmt: skip
_EMAIL_TEMPLATES = (
    ("Sent proposal for {product}", "Emailed the proposal and order form to {contact}."),
    ("Follow-up: {product} pricing", "Sent the revised pricing table and volume discounts."),
    ("Intro email to {contact}", "Introduced myself and shared a short overview of {product}."),
    ("Shared case study with {contact}", "Sent the {industry} case study {first} asked for."),
    ("Contract redlines for {company}", "Returned legal's redlines on the MSA."),
)
_TASK_TEMPLATES = (
    ("Send revised quote to {contact}", "Include the multi-year option for {product}."),
    ("Prepare QBR deck for {company}", "Pull usage numbers and support stats before the review."),
    ("Follow up on security questionnaire", "{company} security team is waiting on our SOC 2 answers."),
    ("Schedule demo with {contact}", "Find a slot next week for a {product} demo."),
    ("Update forecast for {company}", "Refresh amount and close date after the latest call."),
)  # fmt: skip
_NOTE_TEMPLATES = {
    "open": (
        ("Budget confirmed", "{first} confirmed budget for {product}; legal review should start next week."),
        ("Competitor in the deal", "{company} is also evaluating {competitor}. Price will matter more than features."),
        ("Champion update", "{contact} is pushing internally for {product} and offered to brief the CFO."),
        ("Security review", "Security questionnaire received from {company}; SSO and data residency are must-haves."),
        ("Next steps", "Agreed to send a mutual action plan for {product} and book a technical deep-dive."),
    ),
    "won": (
        ("Deal won", "{company} signed for {product}. Kickoff to be scheduled with {first}."),
        ("Why we won", "{contact} said onboarding support and integrations decided it for {product}."),
    ),
    "lost": (
        ("Deal lost", "{company} went another way on {product}. Loss reason: {reason}."),
        ("Loss review", "Lost {product} at {company}. Revisit in two quarters; keep {first} warm."),
    ),
    "general": (
        ("Org change", "{contact} now reports to a new COO at {company}; reconfirm priorities."),
        ("Account background", "{company} works in {industry}; main contact is {contact}."),
        ("Call notes", "{first} mentioned expansion to a new region next year; good upsell opening."),
        ("Support escalation", "{company} raised a support escalation last week; it was resolved in 2 days."),
        ("Event follow-up", "Met {contact} at the industry conference; interested in {product}."),
    ),
}  # fmt: skip
_PROJECT_STATUSES = ("planned", "in_progress", "completed", "on_hold")


# --------------------------------------------------------------------------- helpers


def _ascii_slug(text: str, keep: str = "") -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in plain.lower() if ch.isalnum() or ch in keep)


def _email_local(first: str, last: str) -> str:
    return f"{_ascii_slug(first, '-')}.{_ascii_slug(last, '-')}"


def _money_label(millions: int) -> str:
    if millions >= 1000:
        return f"${millions / 1000:.1f}B"
    return f"${millions}M"


class _Builder:
    """One build: owns the random generator and the cross-resource bookkeeping."""

    def __init__(self, shift: timedelta = timedelta(0)) -> None:
        self.shift = shift  # added to every date written, so that BASE_TIME becomes the seed's "now"
        self.rng = random.Random(SEED)
        self.used_names: set[str] = set()
        self.used_phones: set[str] = {"+1 415 555 0100", "+1 415 555 0101", "+1 617 555 0142"}
        self.users: list[Record] = []
        self.user_names: dict[str, str] = {}
        self.user_emails: dict[str, str] = {}
        self.stages: dict[str, tuple[str, str, int]] = {}  # stage id -> (pipeline id, name, prob)
        self.companies: list[Record] = []
        self.company_meta: dict[str, dict[str, Any]] = {}
        self.used_company_combos: set[tuple[str, str]] = set()
        self.contacts: list[Record] = []
        self.contacts_by_company: dict[str, list[Record]] = {}
        self.contact_created: dict[str, datetime] = {}
        self.opportunities: list[Record] = []
        self.opp_meta: dict[str, dict[str, Any]] = {}
        self.activities: list[Record] = []
        self.notes: list[Record] = []

    # ----------------------------------------------------------------- dates

    def iso(self, moment: datetime) -> str:
        return (moment + self.shift).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def day(self, moment: datetime) -> str:
        return (moment + self.shift).strftime("%Y-%m-%d")

    # ----------------------------------------------------------------- small random helpers

    def between(self, lo: datetime, hi: datetime) -> datetime:
        """A random minute in [lo, hi] (lo if the range is empty)."""
        if hi <= lo:
            return lo
        minutes = int((hi - lo).total_seconds() // 60)
        return lo + timedelta(minutes=self.rng.randint(0, minutes))

    def days_ago(self, lo_days: float, hi_days: float) -> datetime:
        return self.between(BASE_TIME - timedelta(days=hi_days), BASE_TIME - timedelta(days=lo_days))

    def working_time(self, moment: datetime, lo: datetime, hi: datetime, quarter: bool = False) -> datetime:
        """Move a moment onto a weekday during (US) office hours, staying within [lo, hi]."""
        if moment.weekday() >= 5:
            moment -= timedelta(days=moment.weekday() - 4)
        minute = self.rng.choice((0, 15, 30, 45)) if quarter else self.rng.randrange(0, 60, 5)
        moment = moment.replace(hour=self.rng.randint(14, 22), minute=minute, second=0, microsecond=0)
        return min(max(moment, lo), hi)

    def person_name(self) -> tuple[str, str]:
        while True:
            first = self.rng.choice(_FIRST_NAMES)
            last = self.rng.choice(_LAST_NAMES)
            if f"{first} {last}" not in self.used_names:
                self.used_names.add(f"{first} {last}")
                return first, last

    def phone(self, city: tuple[Any, ...]) -> str:
        prefix = city[4]
        while True:
            if prefix.startswith("+44"):
                number = f"{prefix} 7946 0{self.rng.randint(0, 999):03d}"
            else:
                number = f"{prefix} 555 01{self.rng.randint(0, 99):02d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def city(self) -> tuple[Any, ...]:
        return self.rng.choices(_CITIES, weights=_CITY_WEIGHTS)[0]

    def amount(self, lo: int, hi: int) -> int:
        raw = lo + (hi - lo) * self.rng.random() ** 2
        return max(lo, min(hi, round(raw / 500.0) * 500))

    # ----------------------------------------------------------------- resources

    def build_users(self) -> None:
        org_city = next(c for c in _CITIES if c[0] == "Denver")
        for index, (uid, first, last, title, department, division) in enumerate(_USERS):
            self.used_names.add(f"{first} {last}")
            email = f"{_email_local(first, last)}@{_ORG_DOMAIN}"
            created = BASE_TIME - timedelta(days=548) + timedelta(hours=2 * index)
            self.user_names[uid] = f"{first} {last}"
            self.user_emails[uid] = email
            self.users.append(
                {
                    "id": uid,
                    "username": _email_local(first, last),
                    "first_name": first,
                    "last_name": last,
                    "title": title,
                    "division": division,
                    "department": department,
                    "company_name": "Sandbox CRM Inc.",
                    "employee_number": f"E{1001 + index}",
                    "language": "EN",
                    "status": "active",
                    "emails": [{"email": email, "type": "work"}],
                    "phone_numbers": [{"number": self.phone(org_city), "type": "work"}],
                    "created_at": self.iso(created),
                    "updated_at": self.iso(created + timedelta(days=self.rng.randint(10, 400))),
                }
            )

    def build_pipelines(self) -> list[Record]:
        pipelines = []
        created = BASE_TIME - timedelta(days=547)
        for order, (pid, name, stages) in enumerate(_PIPELINES):
            stage_records = []
            for position, (sid, stage_name, value, probability) in enumerate(stages):
                self.stages[sid] = (pid, stage_name, probability)
                stage_records.append(
                    {
                        "id": sid,
                        "name": stage_name,
                        "value": value,
                        "win_probability": probability,
                        "display_order": position,
                    }
                )
            pipelines.append(
                {
                    "id": pid,
                    "name": name,
                    "currency": "USD",
                    "archived": False,
                    "active": True,
                    "display_order": order,
                    "win_probability_enabled": True,
                    "stages": stage_records,
                    "created_at": self.iso(created + timedelta(hours=order)),
                    "updated_at": self.iso(created + timedelta(days=30 + order)),
                }
            )
        return pipelines

    def _company_record(
        self,
        cid: str,
        name: str,
        domain: str,
        industry: tuple[str, str, str],
        city: tuple[Any, ...],
        size: tuple[str, tuple[int, int]],
        owner: str,
        created: datetime,
        main_phone: str | None = None,
    ) -> Record:
        rng = self.rng
        employees, (rev_lo, rev_hi) = size
        revenue = rng.randint(rev_lo, rev_hi)
        ownership = "Public" if employees in ("5001-10000", "10000+") or rng.random() < 0.15 else "Private"
        city_name, state, postal, country, _ = city
        address: Record = {
            "type": "primary",
            "line1": f"{rng.randint(1, 99) * 10 + rng.randint(0, 9)} {rng.choice(_STREETS)}",
        }
        if rng.random() < 0.5:
            address["line2"] = rng.choice(("Suite", "Floor")) + f" {rng.randint(2, 30)}"
        address["city"] = city_name
        if state:
            address["state"] = state
        address["postal_code"] = postal
        address["country"] = country
        segment = (
            "enterprise"
            if employees in ("1001-5000", "5001-10000", "10000+")
            else ("mid-market" if employees in ("201-500", "501-1000") else "smb")
        )
        tags = [segment, industry[0].lower()]
        where = f"{city_name}, {state}" if state else f"{city_name}, United Kingdom"
        record: Record = {
            "id": cid,
            "name": name,
            "owner_id": owner,
            "description": f"{name} provides {industry[2]}. Headquartered in {where}.",
            "industry": industry[1],
            "ownership": ownership,
            "currency": "USD",
            "annual_revenue": _money_label(revenue),
            "number_of_employees": employees,
            "websites": [{"url": f"https://www.{domain}", "type": "primary"}],
            "addresses": [address],
            "phone_numbers": [{"number": main_phone or self.phone(city), "type": "primary"}],
            "emails": [{"email": f"info@{domain}", "type": "primary"}],
            "tags": tags,
            "created_by": owner if rng.random() < 0.7 else rng.choice(_SDRS),
            "updated_by": owner,
            "created_at": self.iso(created),
        }
        self.company_meta[cid] = {
            "domain": domain,
            "city": city,
            "industry": industry[1],
            "created": created,
            "address": address,
        }
        return record

    def build_companies(self) -> None:
        rng = self.rng
        acme_created = BASE_TIME - timedelta(days=540)
        acme = self._company_record(
            "com_001",
            "Acme Corporation",
            "acme.example",
            ("Manufacturing", "Manufacturing", "industrial equipment and replacement parts"),
            _CITIES[0],
            ("1001-5000", (600, 600)),
            "usr_02",
            acme_created,
            main_phone="+1 415 555 0100",
        )
        acme["description"] = (
            "Acme Corporation makes industrial equipment and replacement parts for manufacturers "
            "across North America. Headquartered in San Francisco, CA; long-standing customer."
        )
        acme["tags"] = ["enterprise", "manufacturing", "strategic"]
        acme["created_by"] = "usr_02"
        self.companies.append(acme)

        prefixes = rng.sample([p for p in _PREFIXES if p != "Harborview"], 49)
        offsets = sorted((rng.uniform(95, 530) for _ in prefixes), reverse=True)
        for number, (prefix, days) in enumerate(zip(prefixes, offsets, strict=True), start=2):
            industry = rng.choice(_INDUSTRIES)
            self.used_company_combos.add((prefix, industry[0]))
            suffix = rng.choice(_COMPANY_SUFFIXES)
            name = f"{prefix} {industry[0]}" + (f" {suffix}" if suffix else "")
            domain = _ascii_slug(prefix + industry[0]) + ".example"
            size = rng.choices(_SIZES, weights=_SIZE_WEIGHTS)[0]
            owner = rng.choice(_ACCOUNT_EXECS)
            created = self.working_time(BASE_TIME - timedelta(days=days), BASE_TIME - timedelta(days=540), BASE_TIME)
            self.companies.append(
                self._company_record(f"com_{number:03d}", name, domain, industry, self.city(), size, owner, created)
            )
        for company in self.companies:
            created = self.company_meta[company["id"]]["created"]
            company["updated_at"] = self.iso(self.between(created + timedelta(days=20), BASE_TIME))

    def build_contacts(self) -> None:
        rng = self.rng
        others = self.companies[1:]
        counts = {company["id"]: 2 for company in others}
        counts["com_001"] = 7  # plus Jane Doe
        weights = [1 + _SIZES.index(next(s for s in _SIZES if s[0] == c["number_of_employees"])) for c in others]
        while sum(counts.values()) < 199:
            company = rng.choices(others, weights=weights)[0]
            if counts[company["id"]] < 9:
                counts[company["id"]] += 1
        acme = self.companies[0]
        acme_meta = self.company_meta["com_001"]
        jane_created = acme_meta["created"] + timedelta(hours=2)
        jane: Record = {
            "id": "con_0001",
            "name": "Jane Doe",
            "first_name": "Jane",
            "last_name": "Doe",
            "title": "VP of Operations",
            "department": "Operations",
            "company_id": "com_001",
            "company_name": acme["name"],
            "owner_id": acme["owner_id"],
            "emails": [{"email": "jane.doe@acme.example", "type": "work"}],
            "phone_numbers": [{"number": "+1 415 555 0101", "type": "work"}],
            "addresses": [dict(acme_meta["address"], type="work")],
            "lead_source": "Referral",
            "description": "Internal champion; owns the plant-operations budget.",
            "tags": ["decision-maker", "champion"],
            "language": "EN",
            "birthday": "1979-04-18",
        }
        self.used_names.update({"Jane Doe", "Tom Baker"})
        self.contact_created["con_0001"] = jane_created
        pending: list[tuple[datetime, Record]] = []
        for company in self.companies:
            cid = company["id"]
            meta = self.company_meta[cid]
            taken = {"VP of Operations"} if cid == "com_001" else set()
            titles = rng.sample([t for t in _CONTACT_TITLES if t[0] not in taken], counts[cid])
            latest = min(meta["created"] + timedelta(days=60), BASE_TIME - timedelta(days=60))
            for title, department in titles:
                first, last = self.person_name()
                created = self.between(meta["created"] + timedelta(days=1), latest)
                contact: Record = {
                    "name": f"{first} {last}",
                    "first_name": first,
                    "last_name": last,
                    "title": title,
                    "department": department,
                    "company_id": cid,
                    "company_name": company["name"],
                    "owner_id": company["owner_id"] if rng.random() < 0.8 else rng.choice(_ACCOUNT_EXECS),
                    "emails": [{"email": f"{_email_local(first, last)}@{meta['domain']}", "type": "work"}],
                    "phone_numbers": [{"number": self.phone(meta["city"]), "type": "work"}],
                }
                if rng.random() < 0.4:
                    contact["phone_numbers"].append({"number": self.phone(meta["city"]), "type": "mobile"})
                if rng.random() < 0.3:
                    contact["addresses"] = [dict(meta["address"], type="work")]
                contact["lead_source"] = rng.choice(_LEAD_SOURCES)
                tags = rng.sample(_CONTACT_TAGS, rng.choice((0, 1, 1, 2)))
                if tags:
                    contact["tags"] = tags
                if rng.random() < 0.25:
                    contact["description"] = rng.choice(_CONTACT_ROLES)
                if rng.random() < 0.25:
                    contact["birthday"] = f"{rng.randint(1962, 1998)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                contact["language"] = "EN" if meta["city"][3] != "CA" or rng.random() < 0.8 else "FR"
                pending.append((created, contact))
        pending.sort(key=lambda item: (item[0], item[1]["name"]))
        ordered = [jane] + [contact for _, contact in pending]
        for number, contact in enumerate(ordered, start=1):
            contact["id"] = f"con_{number:04d}"
            if number > 1:
                self.contact_created[contact["id"]] = pending[number - 2][0]
            # keep "id" first for readability
            record = {"id": contact.pop("id"), **contact}
            self.contacts.append(record)
            self.contacts_by_company.setdefault(record["company_id"], []).append(record)

    def _opportunity(
        self, company: Record, stage_id: str, product: str, amount: int | None = None
    ) -> tuple[Record, dict[str, Any]]:
        rng = self.rng
        cid = company["id"]
        pipeline_id, _stage_name, probability = self.stages[stage_id]
        renewal = pipeline_id == "pip_2"
        candidates = self.contacts_by_company[cid]
        if cid == "com_001" and product in ("Analytics Platform", "Data Pipeline"):
            chosen = [candidates[0], *rng.sample(candidates[1:], 2)]
        else:
            chosen = rng.sample(candidates, rng.randint(1, min(3, len(candidates))))
        lo = max([self.company_meta[cid]["created"]] + [self.contact_created[c["id"]] for c in chosen])
        lo += timedelta(days=1)
        status = "won" if stage_id in _WON_STAGES else "lost" if stage_id in _LOST_STAGES else "open"
        if amount is None:
            amount = self.amount(10000, 180000) if renewal else self.amount(5000, 250000)
        if renewal:
            owner = _CSMS[int(cid[-3:]) % 2]
            kind, title = "Existing Customer - Renewal", f"{company['name']} — {product} renewal"
        elif self.company_meta[cid]["customer"]:
            owner = company["owner_id"] if rng.random() < 0.85 else rng.choice(_ACCOUNT_EXECS)
            kind, title = "Existing Customer - Upgrade", f"{company['name']} — {product} expansion"
        else:
            owner = company["owner_id"] if rng.random() < 0.85 else rng.choice(_ACCOUNT_EXECS)
            kind, title = "New Business", f"{company['name']} — {product} deployment"
        if status == "open":
            created = self.working_time(
                self.between(max(lo, BASE_TIME - timedelta(days=300)), BASE_TIME - timedelta(days=3)),
                lo,
                BASE_TIME - timedelta(days=2),
            )
            changed = self.between(created, BASE_TIME - timedelta(days=1))
            updated = self.between(changed, BASE_TIME - timedelta(hours=1))
            close = BASE_TIME + timedelta(days=rng.randint(7, 150))
            closed_at = None
        else:
            closed_at = self.working_time(
                self.between(lo + timedelta(days=21), BASE_TIME - timedelta(days=2)),
                lo + timedelta(days=21),
                BASE_TIME - timedelta(days=2),
            )
            created = self.between(max(lo, closed_at - timedelta(days=180)), closed_at - timedelta(days=14))
            changed = closed_at
            updated = self.between(closed_at, min(closed_at + timedelta(days=10), BASE_TIME))
            close = closed_at
        priority = "high" if amount >= 100000 else "medium" if amount >= 30000 else "low"
        seats = max(5, amount // 1000 * 2)
        record: Record = {
            "title": title,
            "type": kind,
            "description": f"{seats} seats of {product} for the {chosen[0]['department']} team.",
            "company_id": cid,
            "company_name": company["name"],
            "primary_contact_id": chosen[0]["id"],
            "contact_ids": [c["id"] for c in chosen],
            "owner_id": owner,
            "pipeline_id": pipeline_id,
            "pipeline_stage_id": stage_id,
            "status": status,
            "win_probability": probability,
            "monetary_amount": amount,
            "currency": "USD",
            "expected_revenue": round(amount * probability / 100, 2),
            "close_date": self.day(close),
            "priority": priority,
        }
        if not renewal and rng.random() < 0.7:
            record["lead_source"] = chosen[0].get("lead_source", rng.choice(_LEAD_SOURCES))
        if status == "won":
            record["won_reason"] = rng.choice(_WON_REASONS)
        elif status == "lost":
            record["loss_reason"] = rng.choice(_CHURN_REASONS if renewal else _LOSS_REASONS)
        if renewal or amount >= 150000:
            record["tags"] = ["renewal"] if renewal else ["large-deal"]
        record.update(
            {
                "stage_last_changed_at": self.iso(changed),
                "created_by": owner,
                "updated_by": owner,
                "created_at": self.iso(created),
                "updated_at": self.iso(updated),
            }
        )
        return record, {"created": created, "closed_at": closed_at, "product": product}

    def build_opportunities(self) -> None:
        rng = self.rng
        others = self.companies[1:]
        customers = {"com_001", *(c["id"] for c in rng.sample(others, 21))}
        for company in self.companies:
            self.company_meta[company["id"]]["customer"] = company["id"] in customers
        acme = self.companies[0]
        plan: list[tuple[Record, str, str, int | None]] = [
            (acme, "stg_nb_proposal", "Analytics Platform", 120000),
            (acme, "stg_nb_negotiation", "Security Suite", 85000),
            (acme, "stg_nb_discovery", "Workflow Automation", 45000),
            (acme, "stg_nb_closed_won", "Data Pipeline", 150000),
            (acme, "stg_rn_renewal_due", "Customer Portal", 60000),
        ]
        pairs = {(acme["id"], product) for _, _, product, _ in plan}

        def pick(candidates: list[Record], weights: list[float] | None) -> tuple[Record, str]:
            while True:
                company = rng.choices(candidates, weights=weights)[0]
                product = rng.choice(_PRODUCTS)
                if (company["id"], product) not in pairs:
                    pairs.add((company["id"], product))
                    return company, product

        nb_stages = (
            ["stg_nb_qualification"] * 10
            + ["stg_nb_discovery"] * 9
            + ["stg_nb_proposal"] * 8
            + ["stg_nb_negotiation"] * 6
            + ["stg_nb_closed_won"] * 11
            + ["stg_nb_closed_lost"] * 8
        )
        rn_stages = (
            ["stg_rn_renewal_due"] * 7 + ["stg_rn_negotiation"] * 5 + ["stg_rn_renewed"] * 7 + ["stg_rn_churned"] * 4
        )
        rng.shuffle(nb_stages)
        rng.shuffle(rn_stages)
        weights = [2.0 if c["id"] in customers else 1.0 for c in others]
        rest: list[tuple[Record, str, str, int | None]] = []
        for stage in nb_stages:
            company, product = pick(others, weights)
            rest.append((company, stage, product, None))
        renewal_companies = [c for c in others if c["id"] in customers]
        order = rng.sample(renewal_companies, len(renewal_companies))
        order += rng.sample(renewal_companies, len(rn_stages) - len(order))
        for company, stage in zip(order, rn_stages, strict=True):
            while True:
                product = rng.choice(_PRODUCTS)
                if (company["id"], product) not in pairs:
                    pairs.add((company["id"], product))
                    break
            rest.append((company, stage, product, None))
        rng.shuffle(rest)
        for number, (company, stage, product, amount) in enumerate(plan + rest, start=1):
            record, meta = self._opportunity(company, stage, product, amount)
            oid = f"opp_{number:03d}"
            self.opportunities.append({"id": oid, **record})
            self.opp_meta[oid] = meta

    def _context(self, company: Record, contact: Record, opp: Record | None) -> dict[str, str]:
        product = self.opp_meta[opp["id"]]["product"] if opp else self.rng.choice(_PRODUCTS)
        return {
            "company": company["name"],
            "contact": contact["name"],
            "first": contact["first_name"],
            "product": product,
            "industry": self.company_meta[company["id"]]["industry"].lower(),
            "competitor": self.rng.choice(_COMPETITORS),
            "reason": (opp or {}).get("loss_reason", "Price").lower(),
        }

    def _pick_links(self, company: Record, opp_share: float) -> tuple[Record, Record | None, datetime, datetime]:
        """Contact, maybe an opportunity, and the [lo, hi] window an interaction can fall in."""
        rng = self.rng
        cid = company["id"]
        opps = [o for o in self.opportunities if o["company_id"] == cid]
        opp = None
        if opps and rng.random() < opp_share:
            weights = [2.0 if o["status"] == "open" else 1.0 for o in opps]
            opp = rng.choices(opps, weights=weights)[0]
        contacts_by_id = {c["id"]: c for c in self.contacts_by_company[cid]}
        if opp is not None:  # people on the deal (all of them existed when it was opened)
            contact = contacts_by_id[rng.choice(opp["contact_ids"])]
        else:
            contact = rng.choice(self.contacts_by_company[cid])
        lo = max(self.company_meta[cid]["created"], self.contact_created[contact["id"]])
        hi = BASE_TIME
        if opp is not None:
            meta = self.opp_meta[opp["id"]]
            lo = max(lo, meta["created"])
            if meta["closed_at"] is not None:
                hi = meta["closed_at"]
        return contact, opp, lo + timedelta(hours=1), hi

    def _activity(self, company: Record, contact_override: Record | None = None) -> tuple[datetime, Record]:
        rng = self.rng
        contact, opp, lo, hi = self._pick_links(company, 0.6)
        if contact_override is not None:
            contact = contact_override
            lo = max(lo, self.contact_created[contact["id"]] + timedelta(hours=1))
        kind = rng.choices(_ACTIVITY_TYPES, weights=_ACTIVITY_TYPE_WEIGHTS)[0]
        owner = opp["owner_id"] if opp else rng.choice((company["owner_id"], contact["owner_id"], *_SDRS))
        ctx = self._context(company, contact, opp)
        templates = {
            "call": _CALL_TEMPLATES,
            "meeting": _MEETING_TEMPLATES,
            "email": _EMAIL_TEMPLATES,
            "task": _TASK_TEMPLATES,
        }[kind]
        title, description = rng.choice(templates)
        upcoming = kind in ("meeting", "task") and hi == BASE_TIME and rng.random() < 0.25
        if upcoming:
            start = BASE_TIME + timedelta(days=rng.randint(1, 21))
            start = self.working_time(start, BASE_TIME, BASE_TIME + timedelta(days=30), quarter=True)
        else:
            start = self.working_time(self.between(lo, hi), lo, hi, quarter=kind == "meeting")
        record: Record = {
            "type": kind,
            "title": title.format(**ctx),
            "description": description.format(**ctx),
            "activity_datetime": self.iso(start),
        }
        end = start
        if kind == "call":
            duration = rng.randint(3, 45) * 60
            record["duration_seconds"] = duration
            end = start + timedelta(seconds=duration)
        elif kind == "meeting":
            duration = rng.choice((1800, 2700, 3600, 3600, 5400))
            end = start + timedelta(seconds=duration)
            record["duration_seconds"] = duration
            record["start_datetime"] = self.iso(start)
            record["end_datetime"] = self.iso(end)
            if rng.random() < 0.7:
                code = "".join(rng.choice("abcdefghijkmnopqrstuvwxyz") for _ in range(10))
                record["location"] = "Video call"
                record["video_conference_url"] = f"https://meet.{_ORG_DOMAIN}/{code[:3]}-{code[3:7]}-{code[7:]}"
            else:
                city = self.company_meta[company["id"]]["city"][0]
                record["location"] = f"{company['name']} office, {city}"
            record["show_as"] = "busy"
            record["attendees"] = [
                {
                    "name": self.user_names[owner],
                    "email_address": self.user_emails[owner],
                    "is_organizer": True,
                    "status": "accepted",
                    "user_id": owner,
                },
                {
                    "name": contact["name"],
                    "email_address": contact["emails"][0]["email"],
                    "is_organizer": False,
                    "status": "tentative" if upcoming and rng.random() < 0.4 else "accepted",
                    "contact_id": contact["id"],
                },
            ]
        record["owner_id"] = owner
        record["company_id"] = company["id"]
        record["contact_id"] = contact["id"]
        if opp is not None:
            record["opportunity_id"] = opp["id"]
        if upcoming:
            done = False
        elif kind == "task":
            done = rng.random() < 0.85
        else:
            done = True
        record["done"] = done
        if kind in ("call", "email"):
            created = min(end + timedelta(minutes=rng.randint(1, 30)), BASE_TIME)
        else:
            scheduled_by = min(start, BASE_TIME)  # meetings and tasks are booked ahead of time
            created = self.between(max(lo, scheduled_by - timedelta(days=14)), scheduled_by)
        updated = min(max(created, end + timedelta(minutes=rng.randint(5, 120))), BASE_TIME) if done else created
        record.update(
            {
                "created_by": owner,
                "updated_by": owner,
                "created_at": self.iso(created),
                "updated_at": self.iso(updated),
            }
        )
        return created, record

    def _company_weights(self) -> list[float]:
        weights = []
        for company in self.companies[1:]:
            opps = sum(1 for o in self.opportunities if o["company_id"] == company["id"])
            weights.append(1.0 + 3.0 * opps + 0.5 * len(self.contacts_by_company[company["id"]]))
        return weights

    def build_activities(self) -> None:
        rng = self.rng
        acme = self.companies[0]
        jane = self.contacts[0]
        pending = [self._activity(acme, jane if i < 5 else None) for i in range(18)]
        others, weights = self.companies[1:], self._company_weights()
        for _ in range(300 - len(pending)):
            pending.append(self._activity(rng.choices(others, weights=weights)[0]))
        pending.sort(key=lambda item: (item[0], item[1]["activity_datetime"], item[1]["title"]))
        for number, (_, record) in enumerate(pending, start=1):
            self.activities.append({"id": f"act_{number:04d}", **record})

    def _note(self, company: Record, contact_override: Record | None = None) -> tuple[datetime, Record]:
        rng = self.rng
        contact, opp, lo, hi = self._pick_links(company, 0.5)
        if contact_override is not None:
            contact = contact_override
            lo = max(lo, self.contact_created[contact["id"]] + timedelta(hours=1))
        owner = opp["owner_id"] if opp else rng.choice((company["owner_id"], contact["owner_id"]))
        kind = "general" if opp is None else "open"
        if opp is not None and opp["status"] != "open" and rng.random() < 0.5:
            # a win/loss write-up, within ten days after the deal closed
            kind = opp["status"]
            lo, hi = hi, min(hi + timedelta(days=10), BASE_TIME)
        title, content = rng.choice(_NOTE_TEMPLATES[kind])
        ctx = self._context(company, contact, opp)
        created = self.working_time(self.between(lo, hi), lo, hi)
        updated = self.between(created, BASE_TIME) if rng.random() < 0.2 else created
        record: Record = {
            "title": title,
            "content": content.format(**ctx),
            "owner_id": owner,
            "company_id": company["id"],
            "contact_id": contact["id"],
        }
        if opp is not None:
            record["opportunity_id"] = opp["id"]
        record.update(
            {
                "active": True,
                "created_by": owner,
                "updated_by": owner,
                "created_at": self.iso(created),
                "updated_at": self.iso(updated),
            }
        )
        return created, record

    def build_notes(self) -> None:
        rng = self.rng
        acme = self.companies[0]
        jane = self.contacts[0]
        pending = [self._note(acme, jane if i < 3 else None) for i in range(8)]
        others, weights = self.companies[1:], self._company_weights()
        for _ in range(150 - len(pending)):
            pending.append(self._note(rng.choices(others, weights=weights)[0]))
        pending.sort(key=lambda item: (item[0], item[1]["title"]))
        for number, (_, record) in enumerate(pending, start=1):
            self.notes.append({"id": f"not_{number:03d}", **record})

    def backfill(self) -> None:
        """Derived fields: statuses, contact types, opportunity links and activity dates."""
        opps_by_company: dict[str, list[Record]] = {}
        for opp in self.opportunities:
            opps_by_company.setdefault(opp["company_id"], []).append(opp)
            for contact_id in opp["contact_ids"]:
                contact = next(c for c in self.contacts if c["id"] == contact_id)
                contact.setdefault("opportunity_ids", []).append(opp["id"])
        last: dict[str, str] = {}
        first_call: dict[str, str] = {}
        first_email: dict[str, str] = {}
        now = self.iso(BASE_TIME)
        for activity in self.activities:
            when = activity["activity_datetime"]
            if when > now:
                continue
            for key in ("company_id", "contact_id", "opportunity_id"):
                if key in activity:
                    last[activity[key]] = max(last.get(activity[key], when), when)
            if activity["type"] == "call":
                first_call.setdefault(activity["contact_id"], when)
                first_call[activity["contact_id"]] = min(first_call[activity["contact_id"]], when)
            if activity["type"] == "email":
                first_email.setdefault(activity["contact_id"], when)
                first_email[activity["contact_id"]] = min(first_email[activity["contact_id"]], when)

        for company in self.companies:
            cid = company["id"]
            opps = opps_by_company.get(cid, [])
            customer = self.company_meta[cid]["customer"]
            renewals = [o for o in opps if o["pipeline_id"] == "pip_2"]
            if any(o["status"] == "won" for o in opps):
                status = "Customer"
            elif renewals and all(o["pipeline_stage_id"] == "stg_rn_churned" for o in renewals):
                status = "Former Customer"
            elif customer:
                status = "Customer"
            else:
                status = "Prospect"
            self.company_meta[cid]["status"] = status
            ordered: Record = {}
            for key, value in company.items():
                ordered[key] = value
                if key == "industry":
                    ordered["status"] = status
            if status == "Former Customer":
                ordered["tags"] = [*company["tags"], "churned"]
            if cid in last:
                ordered["last_activity_at"] = last[cid]
            company.clear()
            company.update(ordered)

        for contact in self.contacts:
            status = self.company_meta[contact["company_id"]]["status"]
            ordered = {}
            for key, value in contact.items():
                if key == "title" and status == "Customer":
                    ordered["type"] = "customer"
                ordered[key] = value
            contact_id = contact["id"]
            if contact_id in first_call:
                ordered["first_call_at"] = first_call[contact_id]
            if contact_id in first_email:
                ordered["first_email_at"] = first_email[contact_id]
            if contact_id in last:
                ordered["last_activity_at"] = last[contact_id]
            created = self.contact_created[contact_id]
            ordered["created_at"] = self.iso(created)
            ordered["updated_at"] = self.iso(self.between(created, BASE_TIME))
            contact.clear()
            contact.update(ordered)

        for opp in self.opportunities:
            if opp["id"] in last:
                opp["last_activity_at"] = last[opp["id"]]

    def build_leads(self) -> list[Record]:
        rng = self.rng
        leads: list[Record] = [
            {
                "id": "lea_001",
                "name": "Tom Baker",
                "first_name": "Tom",
                "last_name": "Baker",
                "company_name": "Harborview Logistics",
                "title": "Director of Operations",
                "status": "contacted",
                "lead_source": "Webinar",
                "monetary_amount": 42000,
                "currency": "USD",
                "description": "Attended the route-optimization webinar; evaluating tools for a 40-truck fleet.",
                "emails": [{"email": "tom.baker@harborviewlogistics.example", "type": "work"}],
                "phone_numbers": [{"number": "+1 617 555 0142", "type": "work"}],
                "websites": [{"url": "https://www.harborviewlogistics.example", "type": "work"}],
                "addresses": [
                    {"type": "work", "city": "Boston", "state": "MA", "postal_code": "02110", "country": "US"}
                ],
                "owner_id": "usr_07",
                "owner_name": self.user_names["usr_07"],
                "tags": ["webinar-2026"],
                "language": "EN",
                "created_at": self.iso(BASE_TIME - timedelta(days=24, hours=3)),
                "updated_at": self.iso(BASE_TIME - timedelta(days=6, hours=1)),
            }
        ]
        combos = {("Harborview", "Logistics"), *self.used_company_combos}
        for number in range(2, 101):
            while True:
                prefix = rng.choice(_PREFIXES)
                industry = rng.choice(_INDUSTRIES)
                if (prefix, industry[0]) not in combos:
                    combos.add((prefix, industry[0]))
                    break
            company_name = f"{prefix} {industry[0]}"
            domain = _ascii_slug(prefix + industry[0]) + ".example"
            first, last = self.person_name()
            title = rng.choice(_CONTACT_TITLES)[0]
            status = rng.choices(_LEAD_STATUSES, weights=_LEAD_STATUS_WEIGHTS)[0]
            created = self.working_time(
                self.days_ago(*_LEAD_STATUS_AGE_DAYS[status]), BASE_TIME - timedelta(days=540), BASE_TIME
            )
            owner = rng.choice(_SDRS) if rng.random() < 0.7 else rng.choice(_ACCOUNT_EXECS)
            city = self.city()
            lead: Record = {
                "id": f"lea_{number:03d}",
                "name": f"{first} {last}",
                "first_name": first,
                "last_name": last,
                "company_name": company_name,
                "title": title,
                "status": status,
                "lead_source": rng.choice(_LEAD_SOURCES),
                "monetary_amount": self.amount(2000, 120000),
                "currency": "USD",
            }
            if status == "unqualified":
                lead["description"] = rng.choice(_UNQUALIFIED_REASONS)
            elif status == "qualified":
                lead["description"] = f"Interested in {rng.choice(_PRODUCTS)}; asked for a demo."
            lead["emails"] = [{"email": f"{_email_local(first, last)}@{domain}", "type": "work"}]
            lead["phone_numbers"] = [{"number": self.phone(city), "type": rng.choice(("work", "mobile"))}]
            if rng.random() < 0.5:
                lead["websites"] = [{"url": f"https://www.{domain}", "type": "work"}]
            if rng.random() < 0.4:
                address: Record = {"type": "work", "city": city[0]}
                if city[1]:
                    address["state"] = city[1]
                address.update(postal_code=city[2], country=city[3])
                lead["addresses"] = [address]
            lead["owner_id"] = owner
            lead["owner_name"] = self.user_names[owner]
            if rng.random() < 0.35:
                lead["tags"] = [rng.choice(_LEAD_TAGS)]
            lead["language"] = "EN"
            lead["created_at"] = self.iso(created)
            lead["updated_at"] = self.iso(self.between(created, BASE_TIME))
            leads.append(lead)
        return leads

    def build_custom_objects(self) -> tuple[list[Record], list[Record]]:
        rng = self.rng
        schema_created = BASE_TIME - timedelta(days=520)
        schema: Record = {
            "id": "cos_projects",
            "name": "Project",
            "fields": [
                {"id": "fld_company_id", "name": "company_id", "type": "reference", "required": True},
                {"id": "fld_opportunity_id", "name": "opportunity_id", "type": "reference", "required": False},
                {
                    "id": "fld_status",
                    "name": "status",
                    "type": "select",
                    "required": True,
                    "options": [
                        {"value": value, "label": value.replace("_", " ").capitalize()} for value in _PROJECT_STATUSES
                    ],
                    "default_value": "planned",
                },
                {"id": "fld_start_date", "name": "start_date", "type": "date", "required": False},
                {"id": "fld_end_date", "name": "end_date", "type": "date", "required": False},
                {"id": "fld_budget", "name": "budget", "type": "currency", "required": False},
            ],
            "visible": True,
            "active": True,
            "created_by": "usr_12",
            "updated_by": "usr_12",
            "created_at": self.iso(schema_created),
            "updated_at": self.iso(schema_created + timedelta(days=45)),
        }
        won = [o for o in self.opportunities if o["pipeline_stage_id"] == "stg_nb_closed_won"]
        chosen = [won[0], *sorted(rng.sample(won[1:], 9), key=lambda o: self.opp_meta[o["id"]]["closed_at"])]
        objects = []
        for number, opp in enumerate(chosen, start=1):
            meta = self.opp_meta[opp["id"]]
            closed_at: datetime = meta["closed_at"]
            start = closed_at + timedelta(days=rng.randint(7, 30))
            end = start + timedelta(days=rng.randint(60, 180))
            if start > BASE_TIME:
                status = "planned"
            elif end < BASE_TIME:
                status = "completed"
            else:
                status = "on_hold" if rng.random() < 0.15 else "in_progress"
            owner = rng.choice(_CSMS)
            created = min(closed_at + timedelta(days=rng.randint(1, 3)), BASE_TIME)
            budget = round(opp["monetary_amount"] * 0.2 / 1000.0) * 1000
            objects.append(
                {
                    "id": f"cob_{number:03d}",
                    "object_id": "cos_projects",
                    "owner_id": owner,
                    "name": f"{opp['company_name']} — {meta['product']} implementation",
                    "fields": [
                        {"name": "company_id", "value": opp["company_id"]},
                        {"name": "opportunity_id", "value": opp["id"]},
                        {"name": "status", "value": status},
                        {"name": "start_date", "value": self.day(start)},
                        {"name": "end_date", "value": self.day(end)},
                        {"name": "budget", "value": str(max(budget, 1000))},
                    ],
                    "created_by": owner,
                    "updated_by": owner,
                    "created_at": self.iso(created),
                    "updated_at": self.iso(self.between(created, BASE_TIME)),
                }
            )
        return [schema], objects

    def build(self) -> dict[str, list[Record]]:
        self.build_users()
        pipelines = self.build_pipelines()
        self.build_companies()
        self.build_contacts()
        self.build_opportunities()
        self.build_activities()
        self.build_notes()
        self.backfill()
        leads = self.build_leads()
        schemas, objects = self.build_custom_objects()
        return {
            "users": self.users,
            "pipelines": pipelines,
            "companies": self.companies,
            "contacts": self.contacts,
            "leads": leads,
            "opportunities": self.opportunities,
            "activities": self.activities,
            "notes": self.notes,
            "custom_object_schemas": schemas,
            "custom_objects": objects,
        }


def seed_shift(now: datetime) -> timedelta:
    """How far the seed's dates move so that they end at `now`: whole days, so that times of day
    (office hours) stay; the seed's "now" then falls within the 24 hours up to `now`."""
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return timedelta(days=(moment - BASE_TIME) // timedelta(days=1))


def build_seed(now: datetime = BASE_TIME) -> dict[str, list[dict]]:
    """Demo CRM data, keyed by resource: users, pipelines, companies, contacts, leads,
    opportunities, activities, notes, custom_object_schemas, custom_objects.

    `now` is the reference time the dates are relative to (the sandbox passes the time it seeds
    a consumer, so that "the last 30 days" always has activities); only the dates depend on it:
    records, ids, names and every other value are the same for every `now`."""
    return _Builder(seed_shift(now)).build()
