// Command ferretdb runs FerretDB v1 with its SQLite backend as labbook's local
// MongoDB-wire server.
//
// FerretDB's own cmd/ferretdb refuses to start when installed with `go install`
// (it expects a version file that only its release build generates), so this is
// a small wrapper around FerretDB's documented embeddable package instead.
//
// It also works around a FerretDB v1.24 defect without patching FerretDB: the
// SQLite backend looks documents up by _id with `WHERE _ferretdb_sjson->'$._id' = ?`
// (find, update and delete by _id) but indexes _id as `_ferretdb_sjson->"_id"`.
// SQLite only uses an expression index whose expression matches the query's
// syntactically, so every such lookup scanned the whole table. indexDatabase gives
// each collection table a unique index on the very expression the queries use, in
// place of FerretDB's own: one in the same transaction that drops the other, so a
// table always has one. A second index on the same values cost every insert a JSON
// extraction and a random B-tree page more (insert_many and insert_one were a fifth
// to a quarter faster with one). A duplicate _id still fails with SQLite's
// UNIQUE-constraint error, which FerretDB reports as MongoDB's E11000; FerretDB's
// metadata still lists _id_, and it never re-creates the index it made itself.
//
// Three settings make writes cheaper, measured with Go's CPU profiler (the first
// two made insert_many a fifth faster, the third another 10-15%):
//   - FerretDB's SQL layer calls logger.With(query args) twice per statement, and
//     slog's TextHandler formats those arguments (whole documents) at once, even
//     when debug logging is off; lazyHandler formats them only for a record that
//     is actually logged.
//   - temp_store(memory) keeps SQLite's statement journals in memory instead of
//     a temporary file opened, written and closed per insert transaction.
//   - The garbage collector took 15% of the CPU of insert_many: its heap is small
//     (tens of MB), so it runs at GOGC=400 unless GOGC is set.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

const (
	// idExpr must stay identical to metadata.IDColumn in FerretDB's
	// internal/backends/sqlite/metadata/metadata.go.
	idExpr = `_ferretdb_sjson->'$._id'`
	// idIndexSuffix names our index <table>_labbook_uid. FerretDB names its own
	// <table>_<Mongo index name> (<table>__id_ for _id) and does not list ours to
	// Mongo clients; <table>_labbook_id was ours before it replaced FerretDB's.
	idIndexSuffix    = "_labbook_uid"
	ferretIDSuffix   = "__id_"
	oldIDIndexSuffix = "_labbook_id"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	data := flag.String("data", "data", "directory for the SQLite database files")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		log.Fatalf("bad -log-level: %v", err)
	}
	slog.SetDefault(slog.New(&lazyHandler{inner: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel})}))

	dir, err := filepath.Abs(*data)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/?_pragma=temp_store(memory)",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The first round runs before clients connect: replacing the index of a large
	// table (an upgrade) holds SQLite's write lock for a while.
	indexer := &idIndexer{dir: dir}
	indexer.round(ctx)
	indexed := make(chan struct{})
	go func() { defer close(indexed); indexer.loop(ctx) }()

	slog.Warn("ferretdb listening", "addr", *listen, "data", dir)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
	stop()
	<-indexed
}

// idIndexer replaces the _id indexes of the collection tables of every database
// file in dir. A file is only opened when it changed since it was last done.
type idIndexer struct {
	dir    string
	done   map[string]string // database file -> its signature when last done
	failed map[string]bool   // database files that failed in the last round
}

// round does every database file that changed since the last round.
func (x *idIndexer) round(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	done, failed := map[string]string{}, map[string]bool{}
	for _, file := range files {
		sig := signature(file)
		if sig != x.done[file] {
			if err := indexDatabase(ctx, file); err != nil {
				// Retried next round. Errors are normal while FerretDB creates or
				// drops that database at the same moment, so only warn of one
				// that persists.
				if x.failed[file] && ctx.Err() == nil {
					slog.Warn("replacing _id index, will retry", "file", file, "error", err)
				}
				failed[file] = true
				continue
			}
		}
		done[file] = sig
	}
	x.done, x.failed = done, failed
}

// loop runs a round every second (collections are created at any time) until ctx ends.
func (x *idIndexer) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		x.round(ctx)
	}
}

// signature changes whenever file's database may have changed: FerretDB writes
// through the WAL, and a checkpoint writes the main file. Taken before indexing,
// so a collection created meanwhile is seen on the next round.
func signature(file string) string {
	var sig string
	for _, f := range []string{file, file + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			sig += fmt.Sprintf("%d@%d ", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return sig
}

// indexDatabase replaces the _id indexes of the collection tables of one database
// file that do not have ours yet. The connection is closed again at once: one held open across a
// dropDatabase would keep the dropped file's WAL alive for a re-created one.
func indexDatabase(ctx context.Context, file string) error {
	// FerretDB's pool parameters (internal/backends/sqlite/metadata/pool/uri.go),
	// plus mode=rw so that a database dropped meanwhile is not re-created empty.
	params := url.Values{"mode": {"rw"}, "_pragma": {"busy_timeout(10000)", "journal_mode(wal)", "auto_vacuum(none)"}}
	db, err := sql.Open("sqlite", "file:"+file+"?"+params.Encode())
	if err != nil {
		return err
	}
	defer db.Close()

	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections
		WHERE table_name || ? NOT IN (SELECT name FROM sqlite_schema WHERE type = 'index')`, idIndexSuffix)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	if err := rows.Close(); err != nil {
		return err
	}

	for _, t := range tables {
		if err := replaceIDIndex(ctx, db, t); err != nil && !strings.Contains(err.Error(), "no such table") {
			return err
		}
		slog.Info("replaced the _id index", "file", file, "table", t)
	}
	return nil
}

// replaceIDIndex gives table t our unique _id index and drops FerretDB's (and the
// non-unique one of an older wrapper) in one transaction: should any statement
// fail, the table keeps the index it had.
func replaceIDIndex(ctx context.Context, db *sql.DB, t string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed

	for _, q := range []string{
		fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %q ON %q (%s)`, t+idIndexSuffix, t, idExpr),
		fmt.Sprintf(`DROP INDEX IF EXISTS %q`, t+ferretIDSuffix),
		fmt.Sprintf(`DROP INDEX IF EXISTS %q`, t+oldIDIndexSuffix),
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// lazyHandler keeps the attributes given to With and formats them only when a
// record is handled, i.e. when it is at an enabled level.
type lazyHandler struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (h *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.WithAttrs(h.attrs).Handle(ctx, r)
}

func (h *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	// The full slice expression makes append copy, so siblings never share attrs.
	return &lazyHandler{inner: h.inner, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

func (h *lazyHandler) WithGroup(name string) slog.Handler {
	return &lazyHandler{inner: h.inner.WithAttrs(h.attrs).WithGroup(name)}
}
