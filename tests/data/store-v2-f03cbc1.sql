-- A SQLite store as twitchwatch at commit f03cbc1 (the last release before rest tracking) wrote it:
-- its SQLiteStore wrote these events, minute rates and a journal entry, then sqlite3's iterdump()
-- gave this text (with the file's user_version first). tests/test_store_migration.py opens it.
PRAGMA user_version = 2;
BEGIN TRANSACTION;
CREATE TABLE events (
    user TEXT NOT NULL, muscle TEXT NOT NULL, device TEXT NOT NULL, source TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, stream TEXT NOT NULL, channel INTEGER NOT NULL,
    kind TEXT NOT NULL, amplitude REAL NOT NULL, unit TEXT NOT NULL, confidence REAL NOT NULL,
    session_id TEXT NOT NULL, dominant_hz REAL,
    PRIMARY KEY (user, muscle, device, source, start_ns)
) WITHOUT ROWID;
INSERT INTO "events" VALUES('alice','calf_left','polar1','live',1700000045000000000,1700000045080000000,'acc',0,'fasciculation',0.125,'g',0.9,'s1',42.5);
INSERT INTO "events" VALUES('alice','calf_left','polar1','live',1700000107000000000,1700000107050000000,'acc',0,'fasciculation',0.25,'g',0.8,'s1',30.0);
INSERT INTO "events" VALUES('alice','calf_left','polar1','live',1700000120000000000,1700000124000000000,'acc',0,'sustained',0.5,'g',0.7,'s1',3.0);
CREATE TABLE flag_sets (
    user TEXT PRIMARY KEY, computed_at_ns INTEGER NOT NULL, document TEXT NOT NULL
);
CREATE TABLE journal (
    entry_id TEXT PRIMARY KEY, user TEXT NOT NULL, time_ns INTEGER NOT NULL, factor TEXT NOT NULL,
    amount TEXT NOT NULL, note TEXT NOT NULL, muscle TEXT NOT NULL
);
INSERT INTO "journal" VALUES('a1b2c3','alice',1700000070000000000,'caffeine','2 cups','','');
CREATE TABLE rates (
    user TEXT NOT NULL, muscle TEXT NOT NULL, device TEXT NOT NULL, source TEXT NOT NULL,
    minute_ns INTEGER NOT NULL, twitches INTEGER NOT NULL, monitored_s REAL NOT NULL,
    PRIMARY KEY (user, muscle, device, source, minute_ns)
) WITHOUT ROWID;
INSERT INTO "rates" VALUES('alice','calf_left','polar1','live',1700000040000000000,1,60.0);
INSERT INTO "rates" VALUES('alice','calf_left','polar1','live',1700000100000000000,1,45.5);
CREATE INDEX events_by_time ON events (start_ns);
CREATE INDEX rates_by_time ON rates (minute_ns);
CREATE INDEX journal_by_time ON journal (time_ns);
COMMIT;
