// alertmanager-ui writes Alertmanager's web UI into a directory, for Debian's
// alertmanager (which ships without it) to serve with --web.ui-path. The UI is the
// compiled Elm app that Alertmanager's own Go module carries up to v0.24.0 (its
// asset package, generated with vfsgen; later modules carry only the Elm sources,
// and compiling those needs Elm's package site, which is out of reach here).
//
//	alertmanager-ui OUTDIR
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"

	"github.com/prometheus/alertmanager/asset"
)

// copyTree copies the directory src of fsys into dst.
func copyTree(fsys http.FileSystem, src, dst string) error {
	dir, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer dir.Close()
	entries, err := dir.Readdir(-1)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		from, to := path.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if e.IsDir() {
			if err := copyTree(fsys, from, to); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(fsys, from, to); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(fsys http.FileSystem, from, to string) error {
	in, err := fsys.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: alertmanager-ui OUTDIR")
		os.Exit(2)
	}
	if err := copyTree(asset.Assets, "/static", os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "alertmanager-ui:", err)
		os.Exit(1)
	}
}
