package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/atomicfile"
	"github.com/policyca/policyca/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Work on policy bundles like code: test, evaluate, build signed bundles"}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyEvalCmd(), newPolicyBuildCmd())
	return cmd
}

func newPolicyTestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test [DIR…]",
		Short: "Run the Rego unit tests of bundles and test directories (OPA's test runner), like `opa test`",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			out := cmd.OutOrStdout()
			r, err := policy.RunRegoTests(cmd.Context(), out, args...)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "PASS: %d/%d\n", r.Passed, r.Passed+r.Failed+r.Errored)
			if r.Failed+r.Errored > 0 {
				fmt.Fprintf(out, "FAIL: %d/%d\n", r.Failed, r.Passed+r.Failed+r.Errored)
				if r.Errored > 0 {
					fmt.Fprintf(out, "ERROR: %d/%d\n", r.Errored, r.Passed+r.Failed+r.Errored)
				}
				return &exitError{1, errors.New("policy tests failed")}
			}
			if r.Passed == 0 {
				return &exitError{1, errors.New("no tests found")}
			}
			return nil
		},
	}
}

func newPolicyEvalCmd() *cobra.Command {
	var bundlePath, dataFile, inputFile string
	cmd := &cobra.Command{
		Use:   "eval --bundle DIR|FILE --input FILE [--data FILE]",
		Short: "Print the decision the CA would make for an input document (exit 0 whatever the decision)",
		Long: `eval normalises the input's identifiers as the CA does (case, trailing dot,
IDNA, canonical IPs; an invalid identifier is an error with exit status 2),
evaluates data.policyca.decision with the bundle, and prints the decision as
JSON. --data replaces data.policyca.authority and data.policyca.provisioners
with the file's "authority" and "provisioners" objects, to try rules without
editing the bundle.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := os.ReadFile(inputFile)
			if err != nil {
				return &exitError{2, err}
			}
			doc, err := normaliseInput(in)
			if err != nil {
				return &exitError{2, fmt.Errorf("%s: %w", inputFile, err)}
			}
			src := bundlePath
			if dataFile != "" {
				tmp, err := os.MkdirTemp("", "policyca-eval-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				if err := overrideBundleData(bundlePath, dataFile, tmp); err != nil {
					return &exitError{2, err}
				}
				src = tmp
			}
			e, err := policy.NewEngine(policy.EngineConfig{Path: src, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			d, err := e.DecideDocument(cmd.Context(), doc)
			if err != nil {
				// Fail closed, as the CA would: the decision is a denial.
				fmt.Fprintf(cmd.ErrOrStderr(), "policyca: evaluation failed (the CA would deny): %v\n", err)
				d.Allow = false
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		},
	}
	f := cmd.Flags()
	f.StringVar(&bundlePath, "bundle", "", "bundle directory or .tar.gz (required)")
	f.StringVar(&inputFile, "input", "", "input document (JSON, see docs/policy.md) (required)")
	f.StringVar(&dataFile, "data", "", `JSON file with "authority" and/or "provisioners" replacing the bundle's`)
	cmd.MarkFlagRequired("bundle")
	cmd.MarkFlagRequired("input")
	return cmd
}

// normaliseInput applies the CA's identifier normalisation to the input
// document's identifiers, leaving everything else as written.
func normaliseInput(b []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	raw, ok := doc["identifiers"]
	if !ok {
		return b, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, errors.New(`"identifiers" must be an array`)
	}
	for i, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("identifiers[%d] is not an object", i)
		}
		typ, _ := m["type"].(string)
		val, _ := m["value"].(string)
		id, err := core.NormalizeIdentifier(core.Identifier{Type: core.IdentifierType(typ), Value: val})
		if err != nil {
			return nil, fmt.Errorf("identifiers[%d]: %w", i, err)
		}
		m["type"], m["value"] = string(id.Type), id.Value
	}
	return json.Marshal(doc)
}

// overrideBundleData copies the bundle to dir, replacing its
// policyca.authority and policyca.provisioners data with the file's.
func overrideBundleData(bundlePath, dataFile, dir string) error {
	b, err := os.ReadFile(dataFile)
	if err != nil {
		return err
	}
	var over map[string]json.RawMessage
	if err := json.Unmarshal(b, &over); err != nil {
		return fmt.Errorf("%s: not a JSON object: %w", dataFile, err)
	}
	for k := range over {
		if k != "authority" && k != "provisioners" {
			return fmt.Errorf("%s: unknown field %q (want authority, provisioners)", dataFile, k)
		}
	}
	if err := copyBundle(bundlePath, dir); err != nil {
		return err
	}
	// The copy is changed, so its signature no longer applies.
	os.Remove(filepath.Join(dir, ".signatures.json"))
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "data.json" {
			return err
		}
		rel, _ := filepath.Rel(dir, filepath.Dir(p))
		prefix := filepath.ToSlash(rel)
		for key := range over {
			if prefix == "policyca/"+key || strings.HasPrefix(prefix, "policyca/"+key+"/") {
				return os.Remove(p)
			}
		}
		var doc map[string]any
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		target := doc
		switch prefix {
		case ".":
			target, _ = doc["policyca"].(map[string]any)
		case "policyca":
		default:
			return nil
		}
		for key := range over {
			delete(target, key)
		}
		out, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		return os.WriteFile(p, out, 0o600)
	})
	if err != nil {
		return err
	}
	for key, v := range over {
		d := filepath.Join(dir, "policyca", key)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "data.json"), v, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// copyBundle copies a bundle directory or extracts a .tar.gz into dir.
func copyBundle(src, dir string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return os.CopyFS(dir, os.DirFS(src))
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	err = policy.EachTarballEntry(f, policy.DefaultMaxBundleBytes, func(h *tar.Header, content io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		name := path.Clean("/" + h.Name)[1:]
		if name == "" || !fs.ValidPath(name) {
			return fmt.Errorf("bad file name %q", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, content); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

func newPolicyBuildCmd() *cobra.Command {
	var keyFile, alg, keyID, out string
	cmd := &cobra.Command{
		Use:   "build DIR --signing-key KEY -o bundle.tar.gz",
		Short: "Build a signed bundle (OPA bundle signatures) from a directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			err = atomicfile.WriteFunc(out, 0o644, func(w io.Writer) error {
				return policy.BuildWithKeyID(args[0], keyID, key, alg, w)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (signed with key id %q, %s)\n", out, keyID, alg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "signing-key", "", "PEM private key that signs the bundle (required)")
	f.StringVar(&alg, "alg", "ES256", "signature algorithm: ES256, ES384, ES512, RS256, …")
	f.StringVar(&keyID, "key-id", policy.DefaultKeyID, "key id the CA's policy.verification_keys names the public key by")
	f.StringVarP(&out, "output", "o", "bundle.tar.gz", "output file")
	cmd.MarkFlagRequired("signing-key")
	return cmd
}
