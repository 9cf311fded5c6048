// Command ferretdb-local runs FerretDB (MongoDB wire protocol on SQLite) for
// the Glasshouse local stack, through FerretDB's embeddable package.
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
	sqliteURL := flag.String("sqlite-url", "", "SQLite directory URI, e.g. file:/abs/dir/ (must end with /)")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		slog.Error("bad -log-level", "value", *level, "error", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if *sqliteURL == "" {
		logger.Error("-sqlite-url is required")
		os.Exit(2)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Warn("FerretDB serving", "listen", *listen, "sqlite", *sqliteURL)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
}
