"""The node's configuration: one TOML file, read with the standard library's tomllib. Every key is checked
before anything starts: an unknown key, a wrong type or a missing required key is an error that names the key
and the file."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """The configuration file cannot be used: the message names the file, the key and the fix."""


@dataclass(frozen=True)
class DicomConfig:
    enabled: bool = True
    ae_title: str = "CXREDGE"
    bind: str = "127.0.0.1"  # loopback unless configured: the X-ray unit's network is the user's choice
    port: int = 11112
    allowed_callers: tuple[str, ...] = ()
    study_stable_seconds: float = 10.0
    min_free_mb: int = 2048

    @property
    def any_caller(self) -> bool:
        return "*" in self.allowed_callers


@dataclass(frozen=True)
class UsbConfig:
    enabled: bool = False
    watch: str = "/media"
    mount_points_only: bool = True  # false: every folder directly below `watch` is a stick (no mount needed)


@dataclass(frozen=True)
class Peer:
    """A DICOM destination, written AE@HOST:PORT."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SendConfig:
    dicom: tuple[Peer, ...] = ()
    heatmap_capture: bool = True
    fhir_url: str = ""
    fhir_token_env: str = ""  # the name of the environment variable holding the bearer token, never the token
    retry_first_seconds: float = 1.0  # backoff: doubled after each failure in a row, up to retry_max_seconds
    retry_max_seconds: float = 3600.0

    @property
    def enabled(self) -> bool:
        return bool(self.dicom or self.fhir_url)


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = False
    bind: str = "127.0.0.1"  # loopback unless configured: a clinic's Wi-Fi is the user's choice
    port: int = 8080
    tls_cert: str = ""
    tls_key: str = ""
    # confirmatory results a clinician may record on a study, and the label each means for site calibration ("" for
    # none: it is recorded but does not set the label)
    confirmatory_codes: tuple[str, ...] = ("pcr_positive", "pcr_negative")
    # what each code says the label is, for `calibrate --from-reviews` (it wins over the reader's finding); a code
    # not named here is recorded but sets no label (a negative PCR does not make a film normal)
    confirmatory_findings: dict = field(default_factory=lambda: {"pcr_positive": "covid19"})
    session_hours: float = 12.0  # a session ends this long after the login, however active
    # addresses whose X-Forwarded-For and X-Forwarded-Proto are believed (a reverse proxy in front); none by default:
    # anyone could otherwise reset the login limit or write any text as the address in the log
    trusted_proxies: tuple[str, ...] = ()
    # the box's language (cxr_edge.language): the screen of users who chose none, the login page when the browser
    # asks for no language the box has, the heatmaps the node draws
    language: str = "en"
    # the host names (and addresses) a browser may ask for (the Host header); empty: the bind address and localhost,
    # or, bound to every address (0.0.0.0), any (the log says to list them)
    hosts: tuple[str, ...] = ()

    @property
    def allowed_hosts(self) -> list[str]:
        if self.hosts:
            return list(self.hosts)
        if ipaddress.ip_address(self.bind).is_unspecified:
            return ["*"]
        return [self.bind, "localhost", "127.0.0.1"]

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.bind).is_loopback


@dataclass(frozen=True)
class CandidateConfig:
    """A bundle run beside the active one on the same images, its results kept apart (shadow mode: docs/box.md)."""

    model: Path | None = None  # the candidate bundle; None: none, unless a stick brings one
    stick_folder: str = ""  # a folder on a stick where a signed candidate bundle (.cxrb) is looked for; "": never
    share: float = 1.0  # the share of images the candidate classifies, drawn by their UID (unbiased, repeatable)
    # the comparison's margins: how much worse than the active bundle the candidate may be and still PASS
    max_sensitivity_drop: float = 0.05
    max_specificity_drop: float = 0.05
    max_accuracy_drop: float = 0.05

    @property
    def enabled(self) -> bool:
        return self.model is not None or bool(self.stick_folder)


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    model: Path
    data: Path
    site: Path | None = None
    dicom: DicomConfig = field(default_factory=DicomConfig)
    usb: UsbConfig = field(default_factory=UsbConfig)
    send: SendConfig = field(default_factory=SendConfig)
    web: WebConfig = field(default_factory=WebConfig)
    candidate: CandidateConfig = field(default_factory=CandidateConfig)
    # the folder of the publishers' keys the node trusts (docs/security.md); None: $CXR_EDGE_TRUSTED_KEYS, else
    # /etc/cxr-edge/trusted-keys
    trusted_keys: Path | None = None

    def as_dict(self) -> dict:
        return {"config": str(self.path), "model": str(self.model), "data": str(self.data),
                "site": str(self.site) if self.site else None,
                "trusted_keys": str(self.trusted_keys) if self.trusted_keys else None,
                "dicom": {**self.dicom.__dict__, "allowed_callers": list(self.dicom.allowed_callers)},
                "usb": dict(self.usb.__dict__),
                "send": {**self.send.__dict__, "dicom": [str(peer) for peer in self.send.dicom]},
                "web": {**self.web.__dict__, "confirmatory_codes": list(self.web.confirmatory_codes),
                        "confirmatory_findings": dict(self.web.confirmatory_findings),
                        "trusted_proxies": list(self.web.trusted_proxies), "hosts": list(self.web.hosts)},
                "candidate": {**self.candidate.__dict__,
                              "model": str(self.candidate.model) if self.candidate.model else None}}


# key: (type, required); the tables' keys below. Extend, don't rename: later issues add [web] and [send].
TOP = {"model": (str, True), "data": (str, True), "site": (str, False), "trusted_keys": (str, False)}
DICOM = {"enabled": (bool, False), "ae_title": (str, False), "bind": (str, False), "port": (int, False),
         "allowed_callers": (list, False), "study_stable_seconds": ((int, float), False),
         "min_free_mb": (int, False)}
USB = {"enabled": (bool, False), "watch": (str, False), "mount_points_only": (bool, False)}
SEND = {"dicom": (list, False), "heatmap_capture": (bool, False), "fhir_url": (str, False),
        "fhir_token_env": (str, False), "retry_first_seconds": ((int, float), False),
        "retry_max_seconds": ((int, float), False)}
WEB = {"enabled": (bool, False), "bind": (str, False), "port": (int, False), "tls_cert": (str, False),
       "tls_key": (str, False), "confirmatory_codes": (list, False), "confirmatory_findings": (dict, False),
       "session_hours": ((int, float), False), "trusted_proxies": (list, False), "language": (str, False),
       "hosts": (list, False)}
CANDIDATE = {"model": (str, False), "stick_folder": (str, False), "share": ((int, float), False),
             "max_sensitivity_drop": ((int, float), False), "max_specificity_drop": ((int, float), False),
             "max_accuracy_drop": ((int, float), False)}
TABLES = {"dicom": DICOM, "usb": USB, "send": SEND, "web": WEB, "candidate": CANDIDATE}


def load_config(path: os.PathLike | str) -> NodeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    where = lambda key: f"{path}: {key}"  # noqa: E731
    top = _checked(raw, {**TOP, **{name: (dict, False) for name in TABLES}}, where, "")
    tables = {name: _checked(top.get(name, {}), keys, where, f"[{name}] ") for name, keys in TABLES.items()}
    dicom = DicomConfig(**{k: tuple(v) if k == "allowed_callers" else v for k, v in tables["dicom"].items()})
    _check_dicom(dicom, tables["dicom"], where)
    base = path.parent
    resolve = lambda value: (base / value).resolve() if not os.path.isabs(value) else Path(value)  # noqa: E731
    send = _send(tables["send"], where)
    web = _web(tables["web"], where, resolve)
    candidate = _candidate(tables["candidate"], where, resolve)
    return NodeConfig(path, resolve(top["model"]), resolve(top["data"]),
                      resolve(top["site"]) if top.get("site") else None, dicom, UsbConfig(**tables["usb"]), send, web,
                      candidate, resolve(top["trusted_keys"]) if top.get("trusted_keys") else None)


def _checked(table: dict, keys: dict, where, prefix: str) -> dict:
    """`table` with every key known, of its type, and the required ones present."""
    for key, value in table.items():
        if key not in keys:
            known = ", ".join(sorted(keys))
            place = prefix.strip() or "at the top"
            raise ConfigError(f"{where(prefix + key)}: unknown key (the keys {place} are: {known})")
        kind = keys[key][0]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):  # TOML's true is no number
            raise ConfigError(f"{where(prefix + key)}: {_type_name(kind)} expected, got {value!r}")
    for key, (_, required) in keys.items():
        if required and key not in table:
            raise ConfigError(f"{where(prefix + key)}: missing, and required")
    return table


def _type_name(kind) -> str:
    names = {str: "a string", bool: "true or false", int: "a whole number", list: "a list", dict: "a table"}
    return names.get(kind, "a number")


def _ae_title(value) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 16 and value.isascii() and "\\" not in value \
        and bool(value.strip())


def _check_address(bind: str, port: int, table: str, where) -> None:
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise ConfigError(f"{where(table + ' bind')}: an IP address of this box (\"127.0.0.1\", \"0.0.0.0\" for "
                          f"every network, or one interface's), got {bind!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{where(table + ' port')}: 1 to 65535, got {port}")


def _check_dicom(dicom: DicomConfig, given: dict, where) -> None:
    if not _ae_title(dicom.ae_title):
        raise ConfigError(f"{where('[dicom] ae_title')}: 1 to 16 ASCII characters, no backslash, got "
                          f"{dicom.ae_title!r}")
    _check_address(dicom.bind, dicom.port, "[dicom]", where)
    if not math.isfinite(dicom.study_stable_seconds):
        raise ConfigError(f"{where('[dicom] study_stable_seconds')}: a number of seconds, got "
                          f"{dicom.study_stable_seconds!r}")
    if dicom.min_free_mb < 0 or dicom.study_stable_seconds < 0:
        key = "min_free_mb" if dicom.min_free_mb < 0 else "study_stable_seconds"
        raise ConfigError(f"{where('[dicom] ' + key)}: must not be negative")
    if not all(c == "*" or _ae_title(c) for c in dicom.allowed_callers):
        raise ConfigError(f"{where('[dicom] allowed_callers')}: a list of AE titles (1 to 16 ASCII characters, no "
                          f"backslash) or [\"*\"], got {list(dicom.allowed_callers)!r}")
    if dicom.enabled and "allowed_callers" in given and not dicom.allowed_callers:
        raise ConfigError(f"{where('[dicom] allowed_callers')}: empty, so no X-ray unit could send: name their calling "
                          'AE titles, e.g. ["XRAYROOM1"], or ["*"] to accept any')
    if dicom.enabled and "allowed_callers" not in given:
        raise ConfigError(f"{where('[dicom] allowed_callers')}: missing, and required while [dicom] is enabled: "
                          'the calling AE titles of your X-ray units, e.g. ["XRAYROOM1"], or ["*"] to accept any')


def parse_peer(text, key: str) -> Peer:
    """AE@HOST:PORT, e.g. PACS@192.168.1.10:104; a ConfigError naming `key` otherwise."""
    example = 'e.g. "PACS@192.168.1.10:104"'
    if not isinstance(text, str) or "@" not in text or ":" not in text.rsplit("@", 1)[-1]:
        raise ConfigError(f"{key}: each destination is AE_TITLE@HOST:PORT, {example}; got {text!r}")
    ae_title, address = text.rsplit("@", 1)
    host, port = address.rsplit(":", 1)
    if not _ae_title(ae_title):
        raise ConfigError(f"{key}: {ae_title!r} in {text!r} is not an AE title (1 to 16 ASCII characters, no "
                          f"backslash), {example}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: the port in {text!r} must be 1 to 65535, {example}")
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"{key}: no host in {text!r}, {example}")
    return Peer(ae_title, host, int(port))


def _send(given: dict, where) -> SendConfig:
    peers = tuple(parse_peer(text, where("[send] dicom")) for text in given.get("dicom", []))
    send = SendConfig(**{**given, "dicom": peers})
    if send.fhir_url and not send.fhir_url.startswith(("https://", "http://")):
        raise ConfigError(f"{where('[send] fhir_url')}: the FHIR server's base URL, https://..., got "
                          f"{send.fhir_url!r}")
    if send.fhir_token_env and not send.fhir_token_env.replace("_", "").isalnum():
        raise ConfigError(f"{where('[send] fhir_token_env')}: the NAME of an environment variable (the token itself "
                          f"is never written in this file), got {send.fhir_token_env!r}")
    for key in ("retry_first_seconds", "retry_max_seconds"):
        value = getattr(send, key)
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{where('[send] ' + key)}: a positive number of seconds, got {value!r}")
    if send.retry_first_seconds > send.retry_max_seconds:
        raise ConfigError(f"{where('[send] retry_first_seconds')}: larger than retry_max_seconds")
    return send


def _candidate(given: dict, where, resolve) -> CandidateConfig:
    values = dict(given)
    if values.get("model"):
        values["model"] = resolve(values["model"])
    else:
        values.pop("model", None)
    folder = values.get("stick_folder", "")
    if folder and (folder in (".", "..") or "/" in folder or "\\" in folder):
        raise ConfigError(f"{where('[candidate] stick_folder')}: the name of a folder at the top of a stick, e.g. "
                          f"\"cxr-edge-candidate\", got {folder!r}")
    candidate = CandidateConfig(**values)
    if not (math.isfinite(candidate.share) and 0 < candidate.share <= 1):
        raise ConfigError(f"{where('[candidate] share')}: the share of images the candidate classifies, more than 0 "
                          f"and at most 1, got {candidate.share!r}")
    for key in ("max_sensitivity_drop", "max_specificity_drop", "max_accuracy_drop"):
        value = getattr(candidate, key)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise ConfigError(f"{where('[candidate] ' + key)}: a proportion from 0 to 1 (0.05: five points), got "
                              f"{value!r}")
    return candidate


def _web(given: dict, where, resolve) -> WebConfig:
    values = dict(given)
    for key in ("tls_cert", "tls_key"):
        if values.get(key):
            values[key] = str(resolve(values[key]))
    if "confirmatory_codes" in values:
        codes = values["confirmatory_codes"]
        if not all(isinstance(c, str) and c.replace("_", "").isalnum() and c.islower() for c in codes) or not codes:
            raise ConfigError(f"{where('[web] confirmatory_codes')}: a list of lower-case codes such as "
                              f'["pcr_positive", "pcr_negative"], got {codes!r}')
        values["confirmatory_codes"] = tuple(codes)
    if "session_hours" in values and not 0 < values["session_hours"] <= 168:
        raise ConfigError(f"{where('[web] session_hours')}: {values['session_hours']!r}: hours a session may last, "
                          "more than 0 and at most 168 (a week); 12 when left out")
    if "trusted_proxies" in values:
        try:
            values["trusted_proxies"] = tuple(str(ipaddress.ip_address(a)) for a in values["trusted_proxies"])
        except ValueError:
            raise ConfigError(f"{where('[web] trusted_proxies')}: a list of IP addresses, such as [\"127.0.0.1\"], "
                              f"got {values['trusted_proxies']!r}") from None
    if "hosts" in values:
        hosts = values["hosts"]
        if not hosts or not all(isinstance(h, str) and re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+|\*", h) for h in hosts):
            raise ConfigError(f"{where('[web] hosts')}: a list of host names or addresses a browser uses to reach the "
                              f'screen, such as ["cxr-box.local", "192.168.1.20"], got {hosts!r}')
        values["hosts"] = tuple(h.lower() for h in hosts)
    if "language" in values:
        from cxr_edge.language import LanguageError, check

        try:
            values["language"] = check(values["language"], where("[web] language"))
        except LanguageError as exc:
            raise ConfigError(str(exc)) from None
    web = WebConfig(**values)
    findings = ("normal", "lung_opacity", "viral_pneumonia", "covid19", "other_abnormal")
    for code, finding in web.confirmatory_findings.items():
        if code not in web.confirmatory_codes or finding not in findings:
            raise ConfigError(f"{where('[web] confirmatory_findings')}: {code} = {finding!r}: each key one of "
                              f"confirmatory_codes, each value one of {', '.join(findings)}")
    _check_address(web.bind, web.port, "[web]", where)
    if bool(web.tls_cert) != bool(web.tls_key):
        missing = "tls_key" if web.tls_cert else "tls_cert"
        raise ConfigError(f"{where('[web] ' + missing)}: missing: TLS needs both the certificate and its key")
    for key in ("tls_cert", "tls_key"):
        if getattr(web, key) and not Path(getattr(web, key)).is_file():
            raise ConfigError(f"{where('[web] ' + key)}: {getattr(web, key)} is not a file")
    return web
