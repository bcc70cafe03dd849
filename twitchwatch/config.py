"""One validated configuration: environment (``TWITCHWATCH_*``) plus a TOML device map.

Environment:
  TWITCHWATCH_MQTT_URL     mqtt://[user[:password]@]host[:port]  (mqtts:// for TLS)
  TWITCHWATCH_MQTT_PASSWORD  overrides the URL's password (also as *_FILE)
  TWITCHWATCH_MQTT_CA_FILE the CA certificate (PEM) an mqtts:// broker's certificate is checked against,
                           instead of the system's CAs (a private CA)
  TWITCHWATCH_STORE_URL    sqlite:///path | influxdb://host:port/database
  TWITCHWATCH_INFLUX_TOKEN / TWITCHWATCH_INFLUX_USERNAME / TWITCHWATCH_INFLUX_PASSWORD
                           each also as *_FILE (a path, for Docker secrets)
  TWITCHWATCH_USER         whose data this is (a topic segment)
  TWITCHWATCH_CONFIG       path of the TOML device map (optional)
  TWITCHWATCH_FLAG_RULES   flag thresholds as JSON, e.g. '{"elevated_factor": 3, "stale_after_s": 900}'
                           (keys: processing.flags.FlagRules; unknown keys are rejected)
  TWITCHWATCH_JOURNAL_WINDOWS_H  hours after a journal entry compared with the baseline, per factor, as
                           JSON, e.g. '{"caffeine": 6, "exercise": 12}' (default 6 h for every factor)
  TWITCHWATCH_FLAGS_INTERVAL_S  seconds between the worker's flag computations (default 300)
  TWITCHWATCH_HA_DISCOVERY  true: publish Home Assistant MQTT discovery for rates and flags (default false)
  TWITCHWATCH_HA_PREFIX    Home Assistant's discovery prefix (default homeassistant)
  TWITCHWATCH_HA_INTERVAL_S  seconds between Home Assistant state updates (default 60, at least 5)
  TWITCHWATCH_TIMEZONE     IANA zone (e.g. America/New_York) whose calendar days and hours of day flags,
                           report and dashboard count in (default: the machine's zone)
  TWITCHWATCH_DASHBOARD_PASSWORD  the dashboard's login password (also as *_FILE); required, or an OIDC
                           login, for `twitchwatch dashboard --host` beyond loopback
  TWITCHWATCH_AMQP_URL     amqp://user:password@host:port/vhost (also as *_FILE): `process` consumes
                           RabbitMQ's partition queues instead of subscribing over MQTT (docs/scaling.md)
  TWITCHWATCH_AMQP_PARTITIONS  number of partition queues (default 16; as `broker setup` made them)
  TWITCHWATCH_AMQP_SLOT    i/n: this worker's share of the partitions (p % n == i), taken first; the rest it
                           stands by for
  TWITCHWATCH_DASHBOARD_OIDC_EMAILS  comma-separated e-mail addresses that may sign in through Streamlit's
                           OIDC login ([auth] in .streamlit/secrets.toml); required with it
  TWITCHWATCH_STATE_DIR    the worker's state: its journal of received frames and checkpoints (a killed
                           worker resumes where it was) and the quarantine of rows a store refused
                           (default: state/ beside the SQLite store's default,
                           ~/.local/share/twitchwatch/state)

TOML device map (unknown keys are rejected)::

    user = "alice"                     # optional; the environment wins
    [devices.polar1]
    profile = "polar-h10"
    address = "A0:9E:1A:00:00:01"      # optional; else found by `name`, else the first polar-h10 nearby
    name = "Polar H10 1A2B3C4D"        # optional: the advertised name
    settings = { rate_hz = 100 }       # optional: the profile's settings (twitchwatch devices list)
    segment = "lower_leg_left"         # optional: the body segment it sits on (default: from its muscles)
    [devices.polar1.streams.acc]       # the streams `collect` starts (default: the profile's main one;
                                       # a gyroscope too where the hardware has one; movement = false: not)
    muscle = "calf_left"               # every channel of the stream
    [devices.myo1.streams.emg.channels]
    "0" = "forearm_flexor_left"        # or channel by channel
    [collect]                          # optional: timeouts (s) and reconnect backoff of `collect`
    scan_timeout = 10
    connect_timeout = 30
    response_timeout = 10
    backoff_initial = 1
    backoff_max = 60
    broker_buffer = 600                # s of frames kept per device while the MQTT broker is away
    frame_span = 0.05                  # s: notifications merged into frames of up to this (0 = off)
    motion_frame_span = 0.1            # s: the same for accelerometers and gyroscopes
    silence_timeout = 30               # s without data from a connected device: reconnect it
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import re
import time
import typing
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from twitchwatch.collector.mqtt import MqttTarget, MqttUrlError, parse_mqtt_url
from twitchwatch.collector.topics import TopicError, check_segment
from twitchwatch.errors import UserError
from twitchwatch.processing.flags import FlagRules
from twitchwatch.processing.journal import DEFAULT_WINDOW_NS, Factor
from twitchwatch.processing.segments import SEGMENTS
from twitchwatch.processing.store import InfluxAuth, StoreUrlError, parse_store_url
from twitchwatch.processing.timeunits import HOUR_NS

if TYPE_CHECKING:  # imported where used: the profiles bring numpy, the BLE targets bleak
    from twitchwatch.collector.ble.target import DeviceTarget, Timing
    from twitchwatch.collector.devices import DeviceProfile


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "twitchwatch"


def default_state_dir() -> Path:
    """The worker's journal and checkpoints (processing/wal.py): local files, whatever the store."""
    return default_data_dir() / "state"


def default_store_url() -> str:
    return f"sqlite:///{default_data_dir() / 'twitchwatch.db'}"


def default_demo_store_url() -> str:
    """The demo's own store: simulated twitches must never reach the history, flags and doctor-visit report
    of the store a user records themselves in."""
    return f"sqlite:///{default_data_dir() / 'demo.db'}"


_ZONEINFO_DIR = "zoneinfo/"
_FIXED_OFFSET = re.compile(r"^UTC([+-])(\d\d):(\d\d)$")


def _is_zone_name(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _offset_name(seconds: int) -> str:
    if seconds == 0:
        return "UTC"
    sign = "+" if seconds > 0 else "-"
    minutes = abs(seconds) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def machine_timezone() -> str:
    """The machine's zone as an IANA name (from TZ, /etc/localtime's link or /etc/timezone); a zone
    without one (a POSIX TZ rule such as ``EST5``) is given as its current fixed offset, ``UTC±HH:MM``."""
    tz_env = os.environ.get("TZ")
    if tz_env is not None:
        name = tz_env.removeprefix(":")
        if _is_zone_name(name):
            return name
        return _offset_name(-time.timezone if time.localtime().tm_isdst <= 0 else -time.altzone)
    candidates = []
    link = Path("/etc/localtime")
    if link.is_symlink():
        target = str(link.resolve())
        if _ZONEINFO_DIR in target:
            candidates.append(target.rsplit(_ZONEINFO_DIR, 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if name and _is_zone_name(name):
            return name
    offset = dt.datetime.now().astimezone().utcoffset()
    return _offset_name(int(offset.total_seconds()) if offset is not None else 0)


def parse_timezone(name: str) -> dt.tzinfo:
    """An IANA zone name, or ``UTC±HH:MM`` (the default for a machine whose zone has no IANA name)."""
    fixed = _FIXED_OFFSET.match(name)
    if fixed:
        sign, hours, minutes = fixed.groups()
        offset = dt.timedelta(hours=int(hours), minutes=int(minutes))
        if offset >= dt.timedelta(hours=24):
            raise ValueError(f"{name!r}: an offset must be less than 24 h")
        return dt.timezone(-offset if sign == "-" else offset, name)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a known time zone; give an IANA name such as Europe/Berlin or "
            "America/New_York (or UTC)"
        ) from None


class ConfigError(UserError, ValueError):
    """Configuration is invalid. ``problems`` are (key path, reason) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {key}: {reason}" for key, reason in problems)
        super().__init__(f"invalid configuration in {source}:\n{lines}")


Segment = Annotated[str, Field(min_length=1, max_length=64)]
# A MAC address, or the per-host UUID macOS shows instead.
_ADDRESS = re.compile(
    r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$"
)


def _segment(value: str, what: str) -> str:
    try:
        return check_segment(value, what)
    except TopicError as exc:
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    # The device map's validators are built when a device file is first read, not by every command that
    # imports the settings.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class StreamMap(_Strict):
    muscle: Segment | None = None
    channels: dict[int, Segment] = Field(default_factory=dict)

    @field_validator("muscle")
    @classmethod
    def _muscle(cls, v: str | None) -> str | None:
        return None if v is None else _segment(v, "muscle")

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: dict[int, str]) -> dict[int, str]:
        for ch, muscle in v.items():
            if not 0 <= ch <= 254:
                raise ValueError(f"channel {ch} outside 0..254")
            _segment(muscle, "muscle")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.muscle is None and not self.channels:
            raise ValueError("give either 'muscle' (whole stream) or 'channels' (one muscle per channel)")
        return self

    def muscle_for(self, channel: int) -> str | None:
        return self.channels.get(channel, self.muscle)


class DeviceMap(_Strict):
    profile: str = "sim"
    address: str | None = None
    name: str | None = Field(None, min_length=1, max_length=248)  # advertised name (BLE allows 248 bytes)
    settings: dict[str, Any] = Field(default_factory=dict)
    streams: dict[str, StreamMap] = Field(default_factory=dict)
    # The body segment the wearable sits on (processing/segments.py); by default the segment of the muscles
    # it watches, from their names. Movement of any wearable on a segment vetoes every muscle there.
    segment: str | None = None
    # Stream the wearable's gyroscope (or orientation) beside its chosen streams, for the rest gate.
    movement: bool = True

    @field_validator("segment")
    @classmethod
    def _segment_name(cls, v: str | None) -> str | None:
        if v is not None and v not in SEGMENTS:
            raise ValueError(f"{v!r} is not a body segment; one of {', '.join(SEGMENTS)}")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not _ADDRESS.match(v):
            raise ValueError(f"{v!r} is not a Bluetooth address like A0:9E:1A:00:00:01 (or a macOS UUID)")
        return v

    @model_validator(mode="after")
    def _profile(self) -> Self:
        if self.profile == "sim":
            if self.settings:
                raise ValueError("'settings' belong to a device profile; 'sim' devices take none")
            return self
        from twitchwatch.collector.devices import ParamError, UnknownProfile, get_profile

        try:
            profile = get_profile(self.profile)
            profile.from_params(self.settings)
            for stream in self.streams:
                profile.spec(stream)
        except UnknownProfile as exc:
            raise ValueError(str(exc)) from None
        except ParamError as exc:
            raise ValueError("; ".join(f"{key}: {why}" for key, why in exc.problems)) from None
        return self


class CollectOptions(_Strict):
    """Timeouts (seconds) and reconnect backoff of ``twitchwatch collect``."""

    scan_timeout: float = Field(default=10.0, gt=0, le=3600)
    connect_timeout: float = Field(default=30.0, gt=0, le=3600)
    response_timeout: float = Field(default=10.0, gt=0, le=3600)
    backoff_initial: float = Field(default=1.0, gt=0, le=3600)
    backoff_max: float = Field(default=60.0, gt=0, le=86400)
    # Seconds of signal kept in memory per device while the MQTT broker is away (~1 MB a minute for a
    # Polar H10's accelerometer at 200 Hz); older frames are dropped first, counted and logged.
    broker_buffer: float = Field(default=600.0, gt=0, le=86400)
    # Seconds of signal a stream's consecutive notifications are merged into (a MetaMotion or Thingy:52
    # notifies one sample at a time; the broker's and the worker's cost is per frame); no sample waits
    # longer. 0: one frame per notification. At most 0.25 (collector.ble.target.MAX_FRAME_SPAN_S): the
    # wait adds to every event's latency.
    frame_span: float = Field(default=0.05, ge=0, le=0.25)
    # The same for accelerometer and gyroscope streams: a 50-Hz sensor's 50-ms frame holds two samples and
    # is mostly header, and a movement only vetoes (EMG events wait for it at most this much longer).
    motion_frame_span: float = Field(default=0.1, ge=0, le=0.25)
    # Seconds a connected device may send no data before it is taken for stalled: disconnected, marked
    # offline, connected again (collector.ble.target.Timing.silence_s).
    silence_timeout: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be ≥ backoff_initial")
        return self


class DeviceFile(_Strict):
    user: Segment | None = None
    devices: dict[str, DeviceMap] = Field(default_factory=dict)
    collect: CollectOptions = Field(default_factory=CollectOptions)

    @field_validator("devices")
    @classmethod
    def _names(cls, v: dict[str, DeviceMap]) -> dict[str, DeviceMap]:
        for name in v:
            _segment(name, "device name")
        return v

    def muscle_for(self, device: str, stream: str, channel: int) -> str | None:
        dev = self.devices.get(device)
        smap = dev.streams.get(stream) if dev else None
        return smap.muscle_for(channel) if smap else None

    def segment_for(self, device: str) -> str | None:
        """The body segment the map gives ``device`` (None: derive it from its muscles' names)."""
        dev = self.devices.get(device)
        return dev.segment if dev else None

    @staticmethod
    def _streams(dev: DeviceMap, profile: type[DeviceProfile]) -> tuple[str, ...]:
        """The map's streams (default: the profile's main one) and, unless ``movement = false``, the
        device's movement streams: the rest gate needs them to tell a still limb from a moving one."""
        chosen = tuple(dev.streams) or (profile.DEFAULT_STREAM,)
        extra = profile.movement_streams() if dev.movement else ()
        return chosen + tuple(s for s in extra if s not in chosen)

    def collect_plan(self, only: Sequence[str] | None = None) -> tuple[list[DeviceTarget], Timing]:
        """The BLE devices ``twitchwatch collect`` streams (all non-``sim`` ones, or those named)."""
        from twitchwatch.collector.ble.target import DeviceTarget, Timing
        from twitchwatch.collector.devices import get_profile

        ble = {name: dev for name, dev in self.devices.items() if dev.profile != "sim"}
        unknown = sorted(set(only or ()) - set(ble))
        if unknown:
            raise ConfigError(
                "--device",
                [
                    (name, f"no BLE device of that name in the device map; it has {sorted(ble) or 'none'}")
                    for name in unknown
                ],
            )
        targets = []
        for name, dev in ble.items():
            if only and name not in only:
                continue
            profile = get_profile(dev.profile)
            targets.append(
                DeviceTarget(
                    name,
                    profile.from_params(dev.settings),
                    self._streams(dev, profile),
                    dev.address,
                    dev.name,
                    functools.partial(self.muscle_for, name),
                )
            )
        c = self.collect
        timing = Timing(
            c.scan_timeout,
            c.connect_timeout,
            c.response_timeout,
            c.backoff_initial,
            c.backoff_max,
            broker_buffer_s=c.broker_buffer,
            frame_span_s=c.frame_span,
            motion_frame_span_s=c.motion_frame_span,
            silence_s=c.silence_timeout,
        )
        return targets, timing


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in err["loc"]) or "(top level)", err["msg"]) for err in exc.errors()]


def load_device_file(path: str | Path) -> DeviceFile:
    """Read and validate a TOML device map; raise ``ConfigError`` with key paths."""
    import tomllib  # here: only the commands that read a device map need it

    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(p), [("(file)", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [("(file)", f"not UTF-8 text at byte {exc.start}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), [("(syntax)", str(exc))]) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(str(p), [("(syntax)", "arrays or tables nested too deeply")]) from None
    try:
        return DeviceFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(p), _problems(exc)) from None


def _from_file_env(values: dict[str, Any], name: str) -> None:
    """Docker-secrets style: TWITCHWATCH_<NAME>_FILE holds a path whose content is the value."""
    file_var = f"TWITCHWATCH_{name.upper()}_FILE"
    path = os.environ.get(file_var)
    if path and values.get(name) is None:
        try:
            values[name] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{file_var}={path}: cannot read ({exc.strerror or exc})") from None


class Settings(BaseModel):
    """Every ``TWITCHWATCH_*`` variable as a validated field (read by ``load_settings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt_url: str = "mqtt://localhost:1883"
    mqtt_password: SecretStr | None = None  # overrides the URL's password; for Docker secrets
    mqtt_ca_file: Path | None = None  # a private CA for mqtts:// (instead of the system's CAs)
    store_url: str = Field(default_factory=default_store_url)
    influx_token: SecretStr | None = None
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    user: Segment = "me"
    config: Path | None = None
    flag_rules: FlagRules = Field(default_factory=FlagRules)
    journal_windows_h: dict[Factor, Annotated[float, Field(gt=0, le=72)]] = Field(default_factory=dict)
    flags_interval_s: float = Field(default=300.0, gt=0)
    ha_discovery: bool = False
    ha_prefix: Segment = "homeassistant"
    ha_interval_s: float = Field(default=60.0, ge=5.0)
    timezone: str = Field(default_factory=machine_timezone)
    dashboard_password: SecretStr | None = None
    dashboard_oidc_emails: str | None = None
    # Scale-out (docs/scaling.md): frames from RabbitMQ's partition queues instead of an MQTT subscription.
    amqp_url: SecretStr | None = None  # amqp://user:password@host:port/vhost: a secret as a whole
    amqp_partitions: int = Field(default=16, ge=1, le=1000)
    amqp_slot: str | None = None  # "i/n": this worker's share of the partitions, subscribed first

    @field_validator("amqp_slot")
    @classmethod
    def _slot(cls, v: str | None) -> str | None:
        if v is not None:
            index, sep, count = v.partition("/")
            if not (sep and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
                raise ValueError(f"expected i/n with 0 <= i < n (this worker's share), got {v!r}")
        return v

    def amqp_slot_value(self) -> tuple[int, int] | None:
        if self.amqp_slot is None:
            return None
        index, _, count = self.amqp_slot.partition("/")
        return int(index), int(count)

    state_dir: Path = Field(default_factory=default_state_dir)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _SECRET_FILES:
                _from_file_env(data, name)
        return data

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt(cls, v: str) -> str:
        try:
            parse_mqtt_url(v)
        except MqttUrlError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("amqp_url")
    @classmethod
    def _amqp(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parts = urlsplit(v.get_secret_value())
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise ValueError("expected amqp://[user:password@]host[:port][/vhost] (amqps:// for TLS)")
            try:
                parts.port  # noqa: B018 - urllib checks the port only when it is read
            except ValueError as exc:  # 99999, abc: it surfaced later, as a bug
                raise ValueError(f"the port: {exc}") from None
        return v

    def amqp_url_value(self) -> str | None:
        return self.amqp_url.get_secret_value() if self.amqp_url is not None else None

    @field_validator("mqtt_ca_file")
    @classmethod
    def _ca_file(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return v
        url = info.data.get("mqtt_url")  # validated before (fields go in order); absent if it failed
        if url is not None and not parse_mqtt_url(url).tls:
            raise ValueError(
                "set, but TWITCHWATCH_MQTT_URL is not mqtts://: the CA would not be used and the connection "
                "would not be encrypted"
            )
        import ssl  # here: most commands never check a CA file, and ssl costs ~10 ms of their start

        try:
            ssl.create_default_context(cafile=str(v))
        except OSError as exc:  # ssl.SSLError is an OSError too
            reason = exc.strerror or exc
            raise ValueError(f"{v}: cannot load it as a CA certificate (PEM): {reason}") from None
        return v

    @field_validator("dashboard_password")
    @classmethod
    def _dashboard_password(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < MIN_DASHBOARD_PASSWORD:
            raise ValueError(
                f"use at least {MIN_DASHBOARD_PASSWORD} characters (the login is all that stands between "
                "the network and your health data), e.g. the output of `openssl rand -base64 18`"
            )
        return v

    @field_validator("dashboard_oidc_emails")
    @classmethod
    def _oidc_emails(cls, v: str | None) -> str | None:
        if v is not None:
            emails = _split_emails(v)
            bad = [e for e in emails if e.count("@") != 1 or e.startswith("@") or e.endswith("@")]
            if not emails or bad:
                raise ValueError(f"expected comma-separated e-mail addresses, got {v!r}")
        return v

    @field_validator("store_url")
    @classmethod
    def _store(cls, v: str) -> str:
        try:
            parse_store_url(v)
        except StoreUrlError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        return _segment(v, "user")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        parse_timezone(v)
        return v

    @field_validator("ha_prefix")
    @classmethod
    def _ha_prefix(cls, v: str) -> str:
        return _segment(v, "Home Assistant discovery prefix")

    @property
    def mqtt(self) -> MqttTarget:
        target = parse_mqtt_url(self.mqtt_url)
        if self.mqtt_password is not None:
            target = dataclasses.replace(target, password=self.mqtt_password.get_secret_value())
        if self.mqtt_ca_file is not None:
            target = dataclasses.replace(target, ca_file=str(self.mqtt_ca_file))
        return target

    @property
    def dashboard_oidc_allowed(self) -> frozenset[str]:
        """The e-mail addresses (lower case) that may sign in to the dashboard through OIDC."""
        return frozenset(_split_emails(self.dashboard_oidc_emails or ""))

    @property
    def tz(self) -> dt.tzinfo:
        """The zone of calendar days, hours of day and printed times (flags, report, dashboard)."""
        return parse_timezone(self.timezone)

    @property
    def influx_auth(self) -> InfluxAuth:
        return InfluxAuth(
            self.influx_token.get_secret_value() if self.influx_token else None,
            self.influx_username,
            self.influx_password.get_secret_value() if self.influx_password else None,
        )

    def device_file(self) -> DeviceFile:
        return load_device_file(self.config) if self.config else DeviceFile()

    @property
    def flag_devices(self) -> tuple[str, ...]:
        """Configured devices: the ones ``stale_sensor`` watches."""
        return tuple(self.device_file().devices)

    @property
    def journal_windows_ns(self) -> dict[Factor, int]:
        """Every factor's window after an entry (the configured ones, else 6 h)."""
        return {
            f: round(self.journal_windows_h[f] * HOUR_NS)
            if f in self.journal_windows_h
            else DEFAULT_WINDOW_NS
            for f in Factor
        }

    @property
    def flags_max_age_s(self) -> float:
        """A stored flag set older than this is stale (the worker is not running): recompute it."""
        return 3 * self.flags_interval_s


_SECRET_FILES = (
    "mqtt_password",
    "influx_token",
    "influx_username",
    "influx_password",
    "dashboard_password",
    "amqp_url",
)
MIN_DASHBOARD_PASSWORD = 12


def _split_emails(text: str) -> list[str]:
    return [e.strip().lower() for e in text.split(",") if e.strip()]


def _unknown_env() -> list[tuple[str, str]]:
    """A mistyped variable would otherwise be ignored silently and a default used in its place."""
    known = {f"TWITCHWATCH_{name.upper()}" for name in Settings.model_fields}
    known |= {f"TWITCHWATCH_{name.upper()}_FILE" for name in _SECRET_FILES}
    return [
        (key, f"unknown variable; known: {', '.join(sorted(known))}")
        for key in sorted(os.environ)
        if key.startswith("TWITCHWATCH_") and key not in known
    ]


def _env_key(path: str) -> str:
    """``flag_rules.elevated_factor`` → ``TWITCHWATCH_FLAG_RULES.elevated_factor`` (keys inside a JSON
    value keep their spelling)."""
    head, _, rest = path.partition(".")
    return f"TWITCHWATCH_{head.upper()}" + (f".{rest}" if rest else "")


def _json_valued(name: str) -> bool:
    """A field holding a table (the flag rules, the journal windows) is spelt as JSON in its variable."""
    annotation = Settings.model_fields[name].annotation
    return dataclasses.is_dataclass(annotation) or typing.get_origin(annotation) is dict


def _from_environment() -> dict[str, Any]:
    """The fields set in the environment, names matched without regard to case as the shell may spell them.

    Read here rather than through pydantic-settings: a command that only reads the store then starts
    ~50 ms sooner (docs/benchmarks.md, command-line start-up), and the rules are these few lines.
    """
    env = {key.upper(): value for key, value in os.environ.items() if key.upper().startswith("TWITCHWATCH_")}
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = f"TWITCHWATCH_{name.upper()}"
        if key not in env:
            continue
        if not _json_valued(name):
            values[name] = env[key]
            continue
        try:
            values[name] = json.loads(env[key])
        except json.JSONDecodeError as exc:
            raise ConfigError("the environment", [(key, f"not valid JSON: {exc}")]) from None
    return values


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and overrides, which win); raise ``ConfigError`` naming the variable."""
    unknown = _unknown_env()
    if unknown:
        raise ConfigError("the environment", unknown)
    values = _from_environment()
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = [(_env_key(key), reason) for key, reason in _problems(exc)]
        raise ConfigError("the environment", problems) from None
    except ValueError as exc:  # a *_FILE that cannot be read
        raise ConfigError("the environment", [("(secret file)", str(exc))]) from None
