package config

import (
	"strings"
	"testing"
)

func TestDatabaseDrivers(t *testing.T) {
	pg := `"database": {"driver": "postgres", "url": "postgres://ca:s3cret@db.internal:5432/policyca?sslmode=verify-full"}`
	tests := []struct {
		name, db string
		wantErr  string // "" = valid
	}{
		{"sqlite default", `"database": {"path": "ca.db"}`, ""},
		{"postgres", pg, ""},
		{"postgresql scheme", `"database": {"driver": "postgres", "url": "postgresql://db/policyca"}`, ""},
		{"postgres without url", `"database": {"driver": "postgres"}`, `"database.url"`},
		{"postgres with path", `"database": {"driver": "postgres", "url": "postgres://db/x", "path": "ca.db"}`, `"database.path": only for driver "sqlite"`},
		{"postgres wrong scheme", `"database": {"driver": "postgres", "url": "mysql://db/x"}`, `"database.url": scheme "mysql"`},
		{"postgres no database", `"database": {"driver": "postgres", "url": "postgres://db"}`, `"database.url": no database name`},
		{"sqlite with url", `"database": {"path": "ca.db", "url": "postgres://db/x"}`, `"database.url": only for driver "postgres"`},
		{"unknown driver", `"database": {"driver": "mysql", "url": "x"}`, `"database.driver": unsupported driver "mysql"`},
		{"unknown field", `"database": {"driver": "postgres", "uri": "postgres://db/x"}`, `unknown field "uri"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, `"database": {"path": "ca.db"}`, tc.db, 1)
			c, err := Parse([]byte(doc), "/etc/policyca")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse = %v, %v; want an error containing %s", c, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error repeats the password: %v", err)
			}
		})
	}
}

func TestNodeName(t *testing.T) {
	for name, ok := range map[string]bool{
		"ca-1": true, "ca1.internal/10.0.0.1:8443": true, "[::1]:8443": false, "": true,
		"has space": false, "-lead": false, strings.Repeat("a", 129): false,
	} {
		doc := strings.Replace(good, `"listen"`, `"node_name": "`+name+`", "listen"`, 1)
		_, err := Parse([]byte(doc), "/etc/policyca")
		if (err == nil) != ok {
			t.Errorf("node_name %q: err = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), `"node_name"`) {
			t.Errorf("node_name %q: error %v does not name the field", name, err)
		}
	}
}
