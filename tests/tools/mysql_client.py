"""A MariaDB/MySQL server for the integration tests, driven through its command-line client
(mariadb or mysql, --batch): no Python driver needed. The default server is the one
harness.MYSQL discovers (root@127.0.0.1:3306 of `make services`, or SLUICE_TEST_MYSQL); a
password comes from SLUICE_MYSQL_PASSWORD. Python 3 standard library only."""
import csv
import os
import shutil
import subprocess
from urllib.parse import urlparse

import harness


class Server:
    """The server and its command-line client."""

    def __init__(self, uri=None):
        uri = uri or harness.MYSQL_URI
        u = urlparse(uri)
        if u.scheme != "mysql" or not u.hostname or not u.username or u.password:
            raise ValueError(f"--server must look like mysql://USER@HOST[:PORT], got {uri}")
        self.user, self.host, self.port = u.username, u.hostname, u.port or 3306
        self.client = shutil.which("mariadb") or shutil.which("mysql")
        self.env = dict(os.environ)
        password = os.environ.get("SLUICE_MYSQL_PASSWORD")
        if password:
            self.env["MYSQL_PWD"] = password

    def uri(self, database, table=None):
        return f"mysql://{self.user}@{self.host}:{self.port}/{database}" + (
            f"/{table}" if table else "")

    def run(self, sql, database=None, timeout=120):
        """Runs SQL (given on stdin); returns the --batch output rows, header first."""
        cmd = [self.client, f"--host={self.host}", f"--port={self.port}", f"--user={self.user}",
               "--protocol=TCP", "--batch", "--connect-timeout=5"]
        if database:
            cmd.append(database)
        p = subprocess.run(cmd, input=sql.encode(), capture_output=True, env=self.env,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{os.path.basename(self.client)} failed: "
                               f"{p.stderr.decode(errors='replace').strip()}")
        lines = p.stdout.decode("utf-8", "replace").split("\n")
        return [[unescape(f) for f in ln.split("\t")] for ln in lines if ln != ""]

    def reachable(self):
        if not self.client:
            return "no mariadb/mysql command-line client on PATH (apt-get install mariadb-client)"
        try:
            self.run("SELECT 1")
            return None
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return f"MariaDB/MySQL not reachable at {self.host}:{self.port} ({e})"


def unescape(field):
    """Undoes --batch escaping; NULL becomes None."""
    if field == "NULL":
        return None
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            nxt = field[i + 1]
            out.append({"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def dump_csv(server, database, table, path):
    rows = server.run(f"SELECT * FROM `{table}`", database)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
    return len(rows) - 1
