package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store/migrate"
	"github.com/policyca/policyca/store/sqlite"
)

func runDB(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newDBCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// TestDBMigrateCommand drives the command between two SQLite files; the
// PostgreSQL path is store/migrate's test and the e2e suite's.
func TestDBMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	st, err := sqlite.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		c := &core.Certificate{Serial: fmt.Sprintf("%x", i+1), DER: []byte{0x30, byte(i)}}
		if err := st.PutCertificate(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	dst := filepath.Join(dir, "dst.db")

	out, err := runDB(t, "migrate", "--from", "sqlite:"+src, "--to", "sqlite:"+dst, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res []migrate.TableResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res) != len(migrate.Tables) {
		t.Fatalf("%d tables in %s", len(res), out)
	}
	for _, r := range res {
		if r.Table == "certificates" && r.Rows != 25 {
			t.Fatalf("certificates: %d rows", r.Rows)
		}
	}

	out, err = runDB(t, "migrate", "--from", "sqlite:"+src, "--to", "sqlite:"+dst)
	if !errors.Is(err, migrate.ErrTargetNotEmpty) {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing --to", []string{"migrate", "--from", "sqlite:" + src}, "both --from and --to"},
		{"missing source file", []string{"migrate", "--from", "sqlite:" + filepath.Join(dir, "nope.db"), "--to", "sqlite:" + filepath.Join(dir, "x.db")}, "--from"},
		{"bad target", []string{"migrate", "--from", "sqlite:" + src, "--to", "mysql://db/x"}, "want sqlite:PATH or postgres://"},
		{"password not echoed", []string{"migrate", "--from", "sqlite:" + src, "--to", "postgres://u:hunter2@127.0.0.1:1"}, "no database name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runDB(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q\n%s", err, tc.want, out)
			}
			if strings.Contains(err.Error()+out, "hunter2") {
				t.Fatalf("the password was printed: %v", err)
			}
		})
	}
}
