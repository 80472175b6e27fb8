-- Prosody 0.12 MAM benchmark configuration (bench/mam_compare.py, bench/README.md "MAM").
-- ../../shared/bench/configs/prosody.cfg.lua plus "mam" in modules_enabled and the archive
-- store on SQL storage (SQLite3 via lua-dbi-sqlite3); every other store stays "internal"
-- (file), as in the shared config, so the same accounts are used. mod_mam options are
-- Prosody's defaults (archive_expires_after = "1w", max_archive_query_results = 50,
-- default_archive_policy = true). Copied to /tmp/benchdata/prosody/ at start (read by the
-- prosody user).
-- (started as root, Prosody switches to the 'prosody' user by itself)
admins = { }
modules_enabled = {
	"disco"; "roster"; "saslauth"; "tls"; "register"; "ping"; "carbons";
	"blocklist"; "private"; "vcard4"; "version"; "uptime"; "time";
	"mam";
}
modules_disabled = { "s2s"; "limits"; "smacks"; }  -- no s2s, no bandwidth limits

data_path = "/tmp/benchdata/prosody/data"
pidfile = "/tmp/benchdata/prosody/prosody.pid"
log = { warn = "/tmp/benchdata/prosody/prosody.log" }

c2s_interfaces = { "127.0.0.1" }
c2s_ports = { 5222 }
s2s_ports = { }
network_settings = { tcp_backlog = 4096 }

c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_secure_auth = false
authentication = "internal_hashed"
default_storage = "internal"
storage = { archive = "sql"; }
sql = { driver = "SQLite3"; database = "/tmp/benchdata/prosody/data/prosody-mam.sqlite"; }

allow_registration = true          -- in-band registration used for provisioning
-- mod_register_limits: 127.0.0.1/::1 are allow-listed by default; no throttle set

certificates = "/tmp/benchdata/prosody/certs"

VirtualHost "localhost"
	ssl = { certificate = "/tmp/benchdata/prosody/certs/localhost.crt"; key = "/tmp/benchdata/prosody/certs/localhost.key"; }

Component "conference.localhost" "muc"
	restrict_room_creation = false
