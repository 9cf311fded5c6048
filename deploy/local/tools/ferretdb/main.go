// Command ferretdb-local runs FerretDB (MongoDB wire protocol) for the
// Glasshouse local stack, through FerretDB's embeddable package, on its
// PostgreSQL backend (what the stack uses: its indexes are real PostgreSQL
// indexes) or its SQLite backend.
//
// Why a wrapper and not FerretDB's own cmd/ferretdb: built from the Go module
// proxy, that command panics at start-up because its version file is generated
// by FerretDB's release tooling and absent from the published module. The
// embeddable package is FerretDB's supported API for running it in-process.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address for the MongoDB wire protocol")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL backend: connection URL, e.g. postgres://user:pass@127.0.0.1:5432/ferretdb")
	sqliteURL := flag.String("sqlite-url", "", "SQLite backend: directory URI, e.g. file:/abs/dir/ (must end with /)")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		slog.Error("bad -log-level", "value", *level, "error", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	config := ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: *listen}, Logger: logger}
	backend := ""
	switch {
	case *postgresURL != "" && *sqliteURL != "":
		logger.Error("give one backend: -postgresql-url or -sqlite-url, not both")
		os.Exit(2)
	case *postgresURL != "":
		config.Handler, config.PostgreSQLURL, backend = "postgresql", *postgresURL, "postgresql"
	case *sqliteURL != "":
		config.Handler, config.SQLiteURL, backend = "sqlite", *sqliteURL, "sqlite "+*sqliteURL
	default:
		logger.Error("a backend is required: -postgresql-url or -sqlite-url")
		os.Exit(2)
	}

	f, err := ferretdb.New(&config)
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The PostgreSQL URL holds a password: only the backend's name is logged.
	logger.Warn("FerretDB serving", "listen", *listen, "backend", backend)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
}
