"""The users pipeline's independent side (examples/users.toml): the API's JSON fetched with
urllib and flattened in Python into the users_profile row, and a `sluice fake-api` process on a
free port. Python 3 standard library only."""
import json
import re
import subprocess
import urllib.parse
import urllib.request
import uuid

# The namespace examples/users.toml derives missing ids from (see its header).
ID_NAMESPACE = uuid.UUID("03dfda38-77dc-5be2-9c23-26d2a4dfa02d")


COLUMNS = ["id", "first_name", "last_name", "gender", "address", "post_code", "email", "username",
           "dob", "registered_date", "phone", "picture"]


def fetch_page(api, seed, page, size, timeout=10):
    url = f"{api}?page={page}&results={size}&seed={urllib.parse.quote(seed)}"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))["results"]


def text(v):
    """A JSON scalar as the text the pipeline keeps: strings as sent, numbers digit for digit."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v)


def get(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def flatten(p):
    """One API profile -> the users_profile row examples/users.toml specifies."""
    parts = [text(get(p, k)) for k in ("location.street.number", "location.street.name",
                                       "location.city", "location.state", "location.country")]
    address = None
    if any(x is not None for x in parts):
        n, street, city, state, country = (x or "" for x in parts)
        address = f"{n} {street}, {city}, {state}, {country}"
    row = {
        "first_name": text(get(p, "name.first")),
        "last_name": text(get(p, "name.last")),
        "gender": text(get(p, "gender")),
        "address": address,
        "post_code": text(get(p, "location.postcode")),
        "email": text(get(p, "email")),
        "username": text(get(p, "login.username")),
        "dob": text(get(p, "dob.date")),
        "registered_date": text(get(p, "registered.date")),
        "phone": text(get(p, "phone")),
        "picture": text(get(p, "picture.medium")),
    }
    login = text(get(p, "login.uuid"))
    if login is None or login.strip() == "":
        name = "|".join(x or "" for x in (
            row["first_name"], row["last_name"], row["email"], row["username"], row["dob"],
            row["registered_date"], row["phone"], row["picture"], *parts,
            row["post_code"]))
        login = str(uuid.uuid5(ID_NAMESPACE, name))
    row["id"] = login
    return row


def flat_message(p):
    """A profile as users-ingest.toml writes it to the topic (for hand-written messages)."""
    keys = {
        "gender": "gender", "name_first": "name.first", "name_last": "name.last",
        "location_street_number": "location.street.number",
        "location_street_name": "location.street.name", "location_city": "location.city",
        "location_state": "location.state", "location_country": "location.country",
        "location_postcode": "location.postcode", "email": "email", "login_uuid": "login.uuid",
        "login_username": "login.username", "dob_date": "dob.date",
        "registered_date": "registered.date", "phone": "phone",
        "picture_medium": "picture.medium",
    }
    return {k: get(p, path) for k, path in keys.items()}


class FakeApi:
    """A `sluice fake-api` process on a free port."""

    def __init__(self, sluice, log, *args):
        self.log = open(log, "w+b")
        self.proc = subprocess.Popen([sluice, "fake-api", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode("utf-8", "replace")
        m = re.search(r"(http://\S+/api/)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"sluice fake-api did not print its URL (got {line!r})")
        self.url = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
