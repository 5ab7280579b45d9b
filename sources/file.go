package sources

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// fileType plugs File into Config and New.
func fileType() sourceType {
	return sourceType{
		name: "file",
		keys: []string{"path"},
		validate: func(c Config) error {
			if strings.TrimSpace(c.Path) == "" {
				return errors.New(`path: required for type "file"`)
			}
			return nil
		},
		build: func(c Config, deps Deps) (Source, error) {
			return NewFile(c.Name, resolvePath(deps.BaseDir, c.Path)), nil
		},
	}
}

// maxFileBytes caps what a file source reads: a list of live environments is
// kilobytes, so anything near this is a mistake (a log, a binary) rather than
// a list, and reading it whole would cost memory for nothing.
const maxFileBytes = 16 << 20

// File lists environments from a local file that a generator, a CI job or a
// person maintains. The format follows the extension:
//
//   - .json: a JSON list (see below).
//   - .yaml, .yml: the same list in YAML.
//   - anything else: plain text, one name per line. "#" starts a comment at
//     the start of a line or after whitespace; blank lines are skipped;
//     surrounding whitespace, CRLF line ends and a UTF-8 BOM are tolerated.
//
// A list element is either a name or an object
//
//	{"name": "pr-12", "attrs": {"pr": "12"}, "created_at": "2025-01-02T03:04:05Z"}
//
// where attrs and created_at (RFC 3339) are optional. Attr values may be any
// scalar and are kept as written (pr: 012 gives "012"); null, lists and maps
// are errors. Unknown keys are errors.
//
// Names are identities, so the file is read strictly: a name must be valid
// UTF-8 without whitespace or control characters, and a name listed twice is
// an error naming both lines. JSON and YAML files must hold an explicit list:
// an empty .json or .yaml file is an error rather than an empty list, since a
// truncated write looks exactly like that. An empty text file is a valid,
// empty list; whether that may delete anything is the reconciler's call.
//
// Items come back sorted by name, and Attrs is never nil.
type File struct {
	name     string
	path     string
	maxBytes int64
}

// NewFile returns a source named name that reads path on every List.
func NewFile(name, path string) *File {
	return &File{name: name, path: path, maxBytes: maxFileBytes}
}

// Name returns the configured source name.
func (f *File) Name() string { return f.name }

// List reads and parses the file. On any failure it returns an incomplete
// snapshot together with the error, never an empty complete one.
func (f *File) List(ctx context.Context) (Snapshot, error) {
	incomplete := Snapshot{Source: f.name}
	if err := ctx.Err(); err != nil {
		return incomplete, fmt.Errorf("listing file source %q: %w", f.name, err)
	}
	data, err := f.read()
	if err != nil {
		return incomplete, fmt.Errorf("listing file source %q: %w", f.name, err)
	}
	items, err := parse(formatOf(f.path), data)
	if err != nil {
		return incomplete, fmt.Errorf("listing file source %q: parsing %s: %w", f.name, f.path, err)
	}
	return Snapshot{Source: f.name, Items: items, Complete: true}, nil
}

// read returns the file's bytes. Errors from os already name the path.
func (f *File) read() ([]byte, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, fmt.Errorf("reading %s: is a directory", f.path)
	}
	// Read one byte past the cap rather than trusting the size from Stat,
	// which a writer may be changing under us.
	data, err := io.ReadAll(io.LimitReader(file, f.maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > f.maxBytes {
		return nil, fmt.Errorf("reading %s: larger than the %d-byte limit", f.path, f.maxBytes)
	}
	return data, nil
}

type fileFormat int

const (
	formatText fileFormat = iota
	formatJSON
	formatYAML
)

func formatOf(path string) fileFormat {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return formatJSON
	case ".yaml", ".yml":
		return formatYAML
	default:
		return formatText
	}
}

// entry is a parsed item with the line it came from, for error messages.
type entry struct {
	env  Env
	line int
}

func parse(format fileFormat, data []byte) ([]Env, error) {
	var (
		entries []entry
		err     error
	)
	switch format {
	case formatJSON:
		entries, err = parseJSON(data)
	case formatYAML:
		entries, err = parseYAML(data)
	default:
		entries, err = parseText(data)
	}
	if err != nil {
		return nil, err
	}
	return collect(entries)
}

// collect rejects duplicate names and returns the items sorted by name.
func collect(entries []entry) ([]Env, error) {
	firstLine := make(map[string]int, len(entries))
	items := make([]Env, 0, len(entries))
	for _, e := range entries {
		if line, seen := firstLine[e.env.Name]; seen {
			return nil, fmt.Errorf("line %d: name %q is already listed on line %d", e.line, e.env.Name, line)
		}
		firstLine[e.env.Name] = e.line
		if e.env.Attrs == nil {
			e.env.Attrs = map[string]string{}
		}
		items = append(items, e.env)
	}
	slices.SortFunc(items, func(a, b Env) int { return cmp.Compare(a.Name, b.Name) })
	return items, nil
}

// checkName enforces what makes a name usable as an identity. It is applied to
// every format so that the same list means the same thing in any of them.
func checkName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) {
			return fmt.Errorf("name %q contains whitespace", name)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("name %q contains a control character", name)
		}
	}
	return nil
}

const utf8BOM = "\ufeff"

func parseText(data []byte) ([]entry, error) {
	text := strings.TrimPrefix(string(data), utf8BOM)
	var entries []entry
	for i, line := range strings.Split(text, "\n") {
		lineNo := i + 1
		name := strings.TrimSpace(stripComment(line))
		if name == "" {
			continue
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		entries = append(entries, entry{env: Env{Name: name}, line: lineNo})
	}
	return entries, nil
}

// stripComment cuts line at the first "#" that starts the line or follows
// whitespace, so that a "#" inside a name ("fix#12") stays part of it.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] != '#' {
			continue
		}
		before, _ := utf8.DecodeLastRuneInString(line[:i])
		if i == 0 || unicode.IsSpace(before) {
			return line[:i]
		}
	}
	return line
}

// object is an element in its object form, before validation.
type object struct {
	name, createdAt       string
	hasName, hasCreatedAt bool
	attrs                 map[string]string
}

func (o object) env() (Env, error) {
	if !o.hasName {
		return Env{}, errors.New(`object has no "name"`)
	}
	if err := checkName(o.name); err != nil {
		return Env{}, err
	}
	env := Env{Name: o.name, Attrs: o.attrs}
	if o.hasCreatedAt {
		created, err := time.Parse(time.RFC3339, o.createdAt)
		if err != nil {
			return Env{}, fmt.Errorf("created_at %q is not an RFC 3339 time: %w", o.createdAt, err)
		}
		env.CreatedAt = created
	}
	return env, nil
}

func unknownKeyError(key string) error {
	return fmt.Errorf("unknown key %q (want name, attrs, created_at)", key)
}

// parseJSON first validates the whole document, because only then are
// syntax error offsets absolute (a Decoder's are relative to the value it was
// reading), and a second value after the list is caught. It then walks the
// token stream rather than unmarshalling, so that every element carries its
// line and duplicate object keys, which encoding/json would silently resolve,
// are errors.
func parseJSON(data []byte) ([]entry, error) {
	// encoding/json rejects a BOM; blanking it instead of cutting it keeps
	// error columns true to the file.
	if bytes.HasPrefix(data, []byte(utf8BOM)) {
		data = append([]byte("   "), data[len(utf8BOM):]...)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty; write [] for an empty list")
	}
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			// Offset counts the bytes read up to and including the bad one.
			line, col := position(data, syntax.Offset-1)
			return nil, fmt.Errorf("line %d, column %d: %w", line, col, err)
		}
		return nil, err
	}

	p := jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	tok, line, err := p.next()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, lineError{line, fmt.Errorf("want a list of names or objects, got %s", describeJSON(tok))}
	}
	var entries []entry
	for p.dec.More() {
		e, err := p.element()
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// jsonParser walks a document that is known to be valid JSON.
type jsonParser struct {
	data []byte
	dec  *json.Decoder
}

// next returns the next token and the line it starts on.
func (p *jsonParser) next() (json.Token, int, error) {
	// The decoder's offset is the end of the previous token, before the
	// whitespace and separators that Token consumes silently.
	start := p.dec.InputOffset()
	for start < int64(len(p.data)) && strings.IndexByte(" \t\r\n,:", p.data[start]) >= 0 {
		start++
	}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, 0, fmt.Errorf("reading JSON token: %w", err)
	}
	line, _ := position(p.data, start)
	return tok, line, nil
}

func (p *jsonParser) element() (entry, error) {
	tok, line, err := p.next()
	if err != nil {
		return entry{}, err
	}
	var env Env
	switch {
	case tok == json.Delim('{'):
		env, err = p.object()
	default:
		name, ok := tok.(string)
		if !ok {
			return entry{}, lineError{line, fmt.Errorf("list element is %s, want a name or an object", describeJSON(tok))}
		}
		env, err = Env{Name: name}, checkName(name)
	}
	if err != nil {
		return entry{}, atLine(line, err)
	}
	return entry{env: env, line: line}, nil
}

// object reads an element object after its opening brace. Errors about a
// single key carry that key's line; errors about the object as a whole are
// left for the caller to place.
func (p *jsonParser) object() (Env, error) {
	var obj object
	seen := map[string]bool{}
	for p.dec.More() {
		keyTok, keyLine, err := p.next()
		if err != nil {
			return Env{}, err
		}
		key, _ := keyTok.(string) // object keys are always strings in valid JSON
		if seen[key] {
			return Env{}, lineError{keyLine, fmt.Errorf("key %q repeated", key)}
		}
		seen[key] = true
		switch key {
		case "name":
			obj.name, obj.hasName, err = p.string(key)
		case "created_at":
			obj.createdAt, obj.hasCreatedAt, err = p.string(key)
		case "attrs":
			obj.attrs, err = p.attrs()
		default:
			err = lineError{keyLine, unknownKeyError(key)}
		}
		if err != nil {
			return Env{}, err
		}
	}
	if _, _, err := p.next(); err != nil { // the closing }
		return Env{}, err
	}
	return obj.env()
}

func (p *jsonParser) string(key string) (string, bool, error) {
	tok, line, err := p.next()
	if err != nil {
		return "", false, err
	}
	s, ok := tok.(string)
	if !ok {
		return "", false, lineError{line, fmt.Errorf("%s is %s, want a string", key, describeJSON(tok))}
	}
	return s, true, nil
}

func (p *jsonParser) attrs() (map[string]string, error) {
	tok, line, err := p.next()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, lineError{line, fmt.Errorf("attrs is %s, want an object of strings", describeJSON(tok))}
	}
	attrs := map[string]string{}
	for p.dec.More() {
		keyTok, keyLine, err := p.next()
		if err != nil {
			return nil, err
		}
		key, _ := keyTok.(string)
		if err := checkAttrKey(key); err != nil {
			return nil, lineError{keyLine, err}
		}
		if _, dup := attrs[key]; dup {
			return nil, lineError{keyLine, fmt.Errorf("attrs.%s repeated", key)}
		}
		valTok, valLine, err := p.next()
		if err != nil {
			return nil, err
		}
		switch v := valTok.(type) {
		case string:
			attrs[key] = v
		case json.Number:
			attrs[key] = v.String()
		case bool:
			attrs[key] = strconv.FormatBool(v)
		default:
			return nil, lineError{valLine, fmt.Errorf("attrs.%s is %s, want a string", key, describeJSON(valTok))}
		}
	}
	if _, _, err := p.next(); err != nil { // the closing }
		return nil, err
	}
	return attrs, nil
}

func checkAttrKey(key string) error {
	if key == "" {
		return errors.New("attrs has an empty key")
	}
	return nil
}

func describeJSON(tok json.Token) string {
	switch tok := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		switch tok {
		case '[', ']':
			return "a list"
		default:
			return "an object"
		}
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", tok)
}

// position converts a byte offset into a 1-based line and column (in bytes).
func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// parseYAML reads the document as nodes rather than into Go values, so that
// scalars keep their written form, every error has a line, and duplicate keys
// are caught.
func parseYAML(data []byte) ([]entry, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file is empty; write [] for an empty list")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: a second YAML document; the file must hold one list", extra.Line)
	}
	list := &doc
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = resolveAlias(list.Content[0])
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: want a list of names or objects, got %s", list.Line, describeYAML(list))
	}
	entries := make([]entry, 0, len(list.Content))
	for _, node := range list.Content {
		env, err := yamlElement(resolveAlias(node))
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{env: env, line: node.Line})
	}
	return entries, nil
}

func yamlElement(node *yaml.Node) (Env, error) {
	var (
		env Env
		err error
	)
	switch {
	case node.Kind == yaml.MappingNode:
		env, err = yamlObject(node)
	case node.Kind == yaml.ScalarNode && !isYAMLNull(node):
		env, err = Env{Name: node.Value}, checkName(node.Value)
	default:
		err = fmt.Errorf("list element is %s, want a name or an object", describeYAML(node))
	}
	if err != nil {
		return Env{}, atLine(node.Line, err)
	}
	return env, nil
}

// yamlObject reads an element map. Errors about a single key come back as
// lineError, so that they name that key's line rather than the element's.
func yamlObject(node *yaml.Node) (Env, error) {
	var obj object
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		keyNode, valNode := resolveAlias(node.Content[i]), resolveAlias(node.Content[i+1])
		if keyNode.Kind != yaml.ScalarNode {
			return Env{}, lineError{keyNode.Line, fmt.Errorf("object key is %s, want a string", describeYAML(keyNode))}
		}
		key := keyNode.Value
		if seen[key] {
			return Env{}, lineError{keyNode.Line, fmt.Errorf("key %q repeated", key)}
		}
		seen[key] = true
		var err error
		switch key {
		case "name":
			obj.name, err = yamlString(key, valNode)
			obj.hasName = true
		case "created_at":
			obj.createdAt, err = yamlString(key, valNode)
			obj.hasCreatedAt = true
		case "attrs":
			obj.attrs, err = yamlAttrs(valNode)
		default:
			err = lineError{keyNode.Line, unknownKeyError(key)}
		}
		if err != nil {
			return Env{}, err
		}
	}
	return obj.env()
}

func yamlAttrs(node *yaml.Node) (map[string]string, error) {
	if node.Kind != yaml.MappingNode {
		return nil, lineError{node.Line, fmt.Errorf("attrs is %s, want a map of strings", describeYAML(node))}
	}
	attrs := make(map[string]string, len(node.Content)/2)
	for i := 0; i+1 < len(node.Content); i += 2 {
		keyNode, valNode := resolveAlias(node.Content[i]), resolveAlias(node.Content[i+1])
		if keyNode.Kind != yaml.ScalarNode {
			return nil, lineError{keyNode.Line, fmt.Errorf("attrs key is %s, want a string", describeYAML(keyNode))}
		}
		key := keyNode.Value
		if err := checkAttrKey(key); err != nil {
			return nil, lineError{keyNode.Line, err}
		}
		if _, dup := attrs[key]; dup {
			return nil, lineError{keyNode.Line, fmt.Errorf("attrs.%s repeated", key)}
		}
		value, err := yamlString("attrs."+key, valNode)
		if err != nil {
			return nil, err
		}
		attrs[key] = value
	}
	return attrs, nil
}

// yamlString returns a scalar as written, so that pr: 012 stays "012" rather
// than becoming the number 12.
func yamlString(key string, node *yaml.Node) (string, error) {
	if node.Kind != yaml.ScalarNode || isYAMLNull(node) {
		return "", lineError{node.Line, fmt.Errorf("%s is %s, want a string", key, describeYAML(node))}
	}
	return node.Value, nil
}

func isYAMLNull(node *yaml.Node) bool {
	return node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null"
}

// lineError is an error already placed on a line, which an enclosing element
// must not place again on its own line.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e lineError) Unwrap() error { return e.err }

// atLine places err on line unless it already names a more specific one.
func atLine(line int, err error) error {
	var placed lineError
	if errors.As(err, &placed) {
		return err
	}
	return lineError{line, err}
}

// resolveAlias follows one alias; aliases of aliases do not occur because an
// anchor names a node, not another alias.
func resolveAlias(node *yaml.Node) *yaml.Node {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		return node.Alias
	}
	return node
}

func describeYAML(node *yaml.Node) string {
	switch node.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a map"
	case yaml.ScalarNode:
		if node.ShortTag() == "!!null" {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", node.Value)
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "nothing"
}
