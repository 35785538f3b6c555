"""Real directory servers for tests: OpenLDAP slapd and a Samba AD DC, plus throwaway TLS certs.

Both are started with ``subprocess.Popen`` in their own process group and always terminated.
slapd listens on random loopback ports (ldap:// and ldaps://); Samba's ports are fixed
(389/636), so one Samba per machine at a time: sessions take a file lock around it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import textwrap
import time
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=broker,ou=services,{SUFFIX}"
AD_DOMAIN_DN = "DC=example,DC=com"


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    """A CA that did not sign the server certificate (the negative tests trust only this one)."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_pki(directory: Path, *, names: tuple[str, ...], ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A CA, a server certificate for ``names``/``ips`` signed by it, and an unrelated second CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("broker test CA")
    _, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = Pki(
        directory / "ca.pem", directory / "cert.pem", directory / "key.pem", directory / "other-ca.pem"
    )
    paths.ca.write_bytes(ca_cert.public_bytes(pem))
    paths.other_ca.write_bytes(other_cert.public_bytes(pem))
    paths.cert.write_bytes(cert.public_bytes(pem))
    paths.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(paths.key, 0o600)
    return paths


# ---------------------------------------------------------------- processes


def program(name: str) -> str:
    """The path of a server program (slapd and samba live in /usr/sbin, not always on PATH)."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(
        f"server not listening on {port} after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server we started (its own process group), then make sure it is gone."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    return "{SSHA}" + b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


# ---------------------------------------------------------------- OpenLDAP


@dataclass
class Slapd:
    root: Path
    pki: Pki
    port: int = 0
    tls_port: int = 0
    root_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    service_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def write_config(self) -> Path:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.root / "slapd.conf"
        schema = "/etc/ldap/schema"
        conf.write_text(
            textwrap.dedent(
                f"""\
                include {schema}/core.schema
                include {schema}/cosine.schema
                include {schema}/inetorgperson.schema
                include {schema}/nis.schema
                modulepath /usr/lib/ldap
                moduleload back_mdb
                moduleload memberof
                moduleload refint
                pidfile {self.root}/slapd.pid
                argsfile {self.root}/slapd.args
                disallow bind_anon
                TLSCACertificateFile {self.pki.ca}
                TLSCertificateFile {self.pki.cert}
                TLSCertificateKeyFile {self.pki.key}
                sizelimit 500

                database mdb
                maxsize 104857600
                suffix "{SUFFIX}"
                rootdn "{ROOT_DN}"
                rootpw {self.root_password}
                directory {data}
                index objectClass,uid,member,uniqueMember,memberUid,mail,memberOf,entryUUID eq
                limits dn.exact="{SERVICE_DN}" size=unlimited time=unlimited
                overlay memberof
                memberof-group-oc groupOfNames
                memberof-member-ad member
                memberof-memberof-ad memberOf
                memberof-refint TRUE
                overlay refint
                refint_attributes member
                access to attrs=userPassword by self write by anonymous auth by * none
                access to * by users read by * none
                """
            )
        )
        return conf

    def start(self) -> None:
        conf = self.write_config()
        log = self.root / "slapd.log"
        for _ in range(5):  # a random port can be taken between choosing and binding it
            self.port, self.tls_port = free_port(), free_port()
            urls = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"
            with log.open("wb") as out:
                self.proc = subprocess.Popen(
                    [program("slapd"), "-d", "0", "-f", str(conf), "-h", urls],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                _wait_port(self.port, self.proc, log)
                _wait_port(self.tls_port, self.proc, log)
                return
            except RuntimeError:
                stop(self.proc)
        raise RuntimeError(f"slapd did not start:\n{log.read_text(errors='replace')[-3000:]}")

    def restart(self) -> None:
        """Start again after stop() or a kill: the same ports (clients configured with its URL
        find it again) and the same data (the mdb directory is kept)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("slapd is still running")
        conf = self.write_config()
        log = self.root / "slapd.log"
        urls = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"
        with log.open("ab") as out:
            self.proc = subprocess.Popen([program("slapd"), "-d", "0", "-f", str(conf), "-h", urls],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, log)

    def ldapadd(self, ldif: str, *, manage_dsa_it: bool = False) -> None:
        path = self.root / f"seed-{secrets.token_hex(4)}.ldif"
        path.write_text(ldif)
        cmd = [
            program("ldapadd"),
            "-x",
            "-H",
            self.url,
            "-D",
            ROOT_DN,
            "-w",
            self.root_password,
            "-f",
            str(path),
        ]
        if manage_dsa_it:
            cmd.insert(1, "-M")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ldapadd failed ({done.returncode}): {done.stderr[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def _entry(dn: str, **attrs: object) -> str:
    lines = [f"dn: {dn}"]
    for name, value in attrs.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            text = str(v)
            if text != text.strip() or not text.isascii() or text.startswith((":", "<")):
                lines.append(f"{name}:: {b64encode(text.encode()).decode()}")
            else:
                lines.append(f"{name}: {text}")
    return "\n".join(lines) + "\n\n"


# Who is who in the OpenLDAP test directory (passwords are per session only).
PAT_DN = f"cn=Pat O'Brien\\, (contractor) * \\5C x,ou=people,{SUFFIX}"
BULK_USERS = 1000
HEAVY_GROUPS = 500


def openldap_seed(slapd: Slapd, passwords: dict[str, str], *, trap_port: int) -> None:
    """Seed ONLINE (memberof fills memberOf only for writes it sees): people, groups, nesting,
    1,000 bulk users, a user in 500 groups, and two referrals pointing at ``trap_port``."""
    people, groups = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"

    def person(uid: str, cn: str, *, dn: str | None = None, mail: str | None = None, **extra: object) -> str:
        return _entry(
            dn or f"uid={uid},{people}",
            objectClass=["inetOrgPerson"],
            uid=uid,
            cn=cn,
            sn=cn.split()[-1],
            displayName=cn,
            mail=mail or f"{uid}@example.org",
            userPassword=ssha(passwords[uid]) if uid in passwords else ssha(secrets.token_urlsafe(12)),
            **extra,
        )

    def group(name: str, members: list[str], *, cls: str = "groupOfNames", attr: str = "member") -> str:
        return _entry(f"cn={name},{groups}", objectClass=[cls], cn=name, **{attr: members})

    def u(uid: str) -> str:
        return f"uid={uid},{people}"

    def g(name: str) -> str:
        return f"cn={name},{groups}"

    out = [
        *_base_entries(slapd),
        person("alice", "Alice Archer", departmentNumber="platform", title="SRE"),
        person("bob", "Bob Baker"),
        person("carol", "Carol Cole"),
        person("dan", "Dan Dyer"),
        person("dora", "Dora Dormant", employeeType="disabled"),  # the conformance suite's disabled account
        person("erin", "Erin Eve"),
        person("admin", "Admin Istrator"),
        person("heavy", "Heavy Member"),
        person("pat", "Pat O'Brien, (contractor) * \\ x", dn=PAT_DN),
        person("twin1", "Twin One", mail="twin@example.org"),
        person("twin2", "Twin Two", mail="twin@example.org"),
        # another "bob", outside ou=people: only reachable by a DN injection through a dn_template
        _entry(f"ou=admins,{SUFFIX}", objectClass=["organizationalUnit"], ou="admins"),
        _entry(
            f"uid=bob,ou=admins,{SUFFIX}",
            objectClass=["inetOrgPerson"],
            uid="bob",
            cn="Bob Admin",
            sn="Admin",
            userPassword=ssha(passwords["bob-admin"]),
        ),
    ]
    out += [person(f"user{i:04d}", f"Bulk User{i:04d}") for i in range(BULK_USERS)]
    out += [
        group("aws-admins", [u("alice")]),
        group("backend", [u("carol")]),
        group("developers", [u("alice"), u("bob"), g("backend")]),
        group("engineering", [g("developers")]),
        group("loop-a", [u("carol")]),
        group("loop-b", [g("loop-a")]),
        group("ephemeral", [u("dan"), u("erin")]),
        group("weird (group) *", [PAT_DN]),
        group("auditors", [u("alice")], cls="groupOfUniqueNames", attr="uniqueMember"),
        _entry(g("unix-ops"), objectClass=["posixGroup"], cn="unix-ops", gidNumber=5000, memberUid=["bob"]),
    ]
    out += [group(f"team-{t}", [u(f"user{i:04d}") for i in range(t * 100, t * 100 + 100)]) for t in range(10)]
    out += [group(f"grp-{i:03d}", [u("heavy")]) for i in range(HEAVY_GROUPS)]
    slapd.ldapadd("".join(out))
    # loop-a contains loop-b contains loop-a: a cycle the walk must survive
    mod = slapd.root / "loop.ldif"
    mod.write_text(f"dn: {g('loop-a')}\nchangetype: modify\nadd: member\nmember: {g('loop-b')}\n")
    ldapmodify_file(slapd, mod)
    trap = f"ldap://127.0.0.1:{trap_port}"
    slapd.ldapadd(
        _entry(
            u("mallory"),
            objectClass=["referral", "extensibleObject"],
            uid="mallory",
            ref=f"{trap}/uid=mallory,{people}",
        )
        + _entry(
            f"ou=elsewhere,{SUFFIX}",
            objectClass=["referral", "extensibleObject"],
            ou="elsewhere",
            ref=f"{trap}/ou=elsewhere,{SUFFIX}",
        ),
        manage_dsa_it=True,
    )


def population_seed(
    slapd: Slapd,
    *,
    users: int,
    groups: int,
    groups_per_user: int,
    password: str,
    everyone: tuple[str, ...] = (),
) -> list[str]:
    """A flat population (benchmarks): ``users`` people ``bench0000``... with one ``password``,
    each a member of ``groups_per_user`` of the groups ``g-000``..., and of every group in
    ``everyone``. Seeded online (memberOf filled). Returns the user ids."""
    people, group_ou = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"
    uids = [f"bench{i:04d}" for i in range(users)]
    members: dict[str, list[str]] = {f"g-{j:03d}": [] for j in range(groups)}
    names = list(members)
    for i, uid in enumerate(uids):
        for k in range(groups_per_user):
            members[names[(i + k * 7) % groups]].append(f"uid={uid},{people}")
    for name in everyone:
        members[name] = [f"uid={uid},{people}" for uid in uids]
    hashed = ssha(password)
    out = [
        *_base_entries(slapd),
    ]
    out += [
        _entry(f"uid={uid},{people}", objectClass=["inetOrgPerson"], uid=uid, cn=f"Bench User {uid[5:]}",
               sn="User", mail=f"{uid}@example.org", userPassword=hashed)
        for uid in uids
    ]
    out += [
        _entry(f"cn={name},{group_ou}", objectClass=["groupOfNames"], cn=name, member=m)
        for name, m in members.items()
        if m
    ]
    slapd.ldapadd("".join(out))
    return uids


def _base_entries(slapd: Slapd) -> list[str]:
    """The suffix, the people/groups/services OUs and the broker's service account."""
    return [
        _entry(SUFFIX, objectClass=["dcObject", "organization"], dc="example", o="Example"),
        _entry(f"ou=people,{SUFFIX}", objectClass=["organizationalUnit"], ou="people"),
        _entry(f"ou=groups,{SUFFIX}", objectClass=["organizationalUnit"], ou="groups"),
        _entry(f"ou=services,{SUFFIX}", objectClass=["organizationalUnit"], ou="services"),
        _entry(
            SERVICE_DN,
            objectClass=["organizationalRole", "simpleSecurityObject"],
            cn="broker",
            userPassword=ssha(slapd.service_password),
        ),
    ]


def ldapmodify_file(slapd: Slapd, path: Path) -> None:
    done = subprocess.run(
        [
            program("ldapmodify"),
            "-x",
            "-H",
            slapd.url,
            "-D",
            ROOT_DN,
            "-w",
            slapd.root_password,
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ldapmodify failed: {done.stderr[-2000:]}")


def ldap_modify(slapd: Slapd, ldif: str) -> None:
    """A change made by the directory's administrator (rootdn), as an operator would."""
    path = slapd.root / f"mod-{secrets.token_hex(4)}.ldif"
    path.write_text(ldif)
    ldapmodify_file(slapd, path)


def group_member(slapd: Slapd, change: str, group: str, member_dn: str) -> None:
    """Add (``change="add"``) or remove (``"delete"``) a member of ou=groups, as an operator would."""
    ldap_modify(
        slapd,
        f"dn: cn={group},ou=groups,{SUFFIX}\nchangetype: modify\n{change}: member\nmember: {member_dn}\n",
    )


def person_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{SUFFIX}"


# generic LDAP has no account-status attribute: a site leaves disabled accounts out of the user search
LDAP_ENABLED_ONLY = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"


# ---------------------------------------------------------------- Samba AD


SAMBA_LOCK = Path("/tmp/broker-tests-samba.lock")
SAMBA_SEED = r"""
import json, sys
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, plan = sys.argv[1], json.loads(sys.stdin.read())
lp = LoadParm(); lp.load(conf)
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
dom = db.domain_dn()

def modify(dn, **attrs):
    m = ldb.Message(); m.dn = ldb.Dn(db, dn)
    for k, v in attrs.items():
        m[k] = ldb.MessageElement(str(v), ldb.FLAG_MOD_REPLACE, k)
    db.modify(m)

modify(str(dom), lockoutThreshold=plan["lockout_threshold"])
for u in plan["users"]:
    db.newuser(u["name"], u["password"], givenname=u.get("given"), surname=u.get("surname"),
               mailaddress=u.get("mail"), department=u.get("department"))
for name in plan["groups"]:
    db.newgroup(name)
for group, members in plan["members"]:
    db.add_remove_group_members(group, members, add_members_operation=True)
for name in plan["disabled"]:
    db.disable_account("(sAMAccountName=%s)" % name)
for name in plan["expired"]:
    db.setexpiry("(sAMAccountName=%s)" % name, 0, no_expiry_req=False)
for name in plan["must_change"]:
    res = db.search(dom, expression="(sAMAccountName=%s)" % name, attrs=["dn"])
    modify(str(res[0].dn), pwdLastSet=0)
print("seeded")
"""


@dataclass
class Samba:
    root: Path
    pki: Pki
    admin_password: str = field(default_factory=lambda: "Adm1n-" + secrets.token_urlsafe(12))
    proc: subprocess.Popen | None = None
    lock: object = None

    host = "127.0.0.1"
    realm = "EXAMPLE.COM"
    netbios = "EXAMPLE"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:636"

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:389"

    @property
    def conf(self) -> Path:
        return self.root / "dc" / "etc" / "smb.conf"

    def acquire(self, timeout: float = 240.0) -> None:
        """Ports 389/636 are fixed: one Samba per machine; wait for another session's to finish."""
        handle = SAMBA_LOCK.open("w")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another test session holds the Samba AD fixture (ports 389/636)")
                time.sleep(1)
        self.lock = handle
        for port in (389, 636):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((self.host, port))
                except OSError:
                    raise RuntimeError(
                        f"port {port} is taken (a system slapd or samba?): "
                        "`systemctl disable --now slapd samba-ad-dc` before running the ad tests"
                    ) from None

    def provision(self, plan: dict) -> None:
        dc = self.root / "dc"
        cmd = [
            program("samba-tool"),
            "domain",
            "provision",
            f"--targetdir={dc}",
            f"--realm={self.realm}",
            f"--domain={self.netbios}",
            "--server-role=dc",
            "--dns-backend=NONE",
            f"--adminpass={self.admin_password}",
            "--use-rfc2307",
            "--host-name=dc1",
            f"--option=interfaces={self.host}",
            "--option=bind interfaces only=yes",
            "--option=server services=ldap",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"samba-tool provision failed: {done.stderr[-3000:]}")
        extra = {
            "pid directory": dc / "run",
            "winbindd socket directory": dc / "winbindd",
            "ntp signd socket directory": dc / "ntp",
            "log file": dc / "log.%m",
        }
        for path in list(extra.values())[:3]:
            Path(path).mkdir(parents=True, exist_ok=True)
        text = self.conf.read_text()
        lines = "".join(f"\t{k} = {v}\n" for k, v in extra.items())
        lines += (
            f"\ttls enabled = yes\n\ttls keyfile = {self.pki.key}\n\ttls certfile = {self.pki.cert}\n"
            f"\ttls cafile = {self.pki.ca}\n"
        )
        text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("log file")) + "\n"
        self.conf.write_text(text.replace("[global]\n", "[global]\n" + lines, 1))
        seed = subprocess.run(
            ["/usr/bin/python3", "-c", SAMBA_SEED, str(self.conf)],
            input=__import__("json").dumps(plan),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if seed.returncode != 0 or "seeded" not in seed.stdout:
            raise RuntimeError(f"seeding Samba failed: {seed.stderr[-3000:]}")

    def start(self) -> None:
        log = self.root / "samba.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [program("samba"), "-s", str(self.conf), "-F", "--debug-stdout", "-M", "single"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_port(636, self.proc, log, timeout=90)
        _wait_port(389, self.proc, log, timeout=30)
        # listening is not answering: wait for a real bind over LDAPS
        import ldap3

        from broker.connectors.ldap_pool import _Tls

        deadline = time.monotonic() + 60
        while True:
            try:
                tls = _Tls(ssl.create_default_context(cafile=str(self.pki.ca)), self.host, timeout=10)
                server = ldap3.Server(self.host, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
                ldap3.Connection(
                    server, f"Administrator@{self.realm.lower()}", self.admin_password, auto_bind=True
                ).unbind()
                return
            except Exception:  # noqa: BLE001 - not up yet, whatever the reason
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"samba does not answer binds:\n{log.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        if self.lock is not None:
            self.lock.close()  # releases the flock
            self.lock = None
