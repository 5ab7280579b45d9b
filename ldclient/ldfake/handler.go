package ldfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// apiError is an LD error representation before it is written: the id is
// assigned and the code possibly dropped (Faults.NoCodeErrors) at write time.
type apiError struct {
	status  int
	code    string
	message string
}

// response is what an operation answers; exactly one of err and body is used.
type response struct {
	status      int
	contentType string
	body        []byte
	err         *apiError
}

func errorResponse(status int, code, message string) response {
	return response{status: status, err: &apiError{status: status, code: code, message: message}}
}

func invalidRequest(message string) response {
	return errorResponse(http.StatusBadRequest, "invalid_request", message)
}

func notFound(message string) response {
	return errorResponse(http.StatusNotFound, "not_found", message)
}

func jsonResponse(status int, v any) response {
	body, err := json.Marshal(v)
	if err != nil {
		return errorResponse(http.StatusInternalServerError, "internal_server_error", "encoding response: "+err.Error())
	}
	return response{status: status, contentType: jsonType, body: body}
}

// outcome is a finished request before it is written.
type outcome struct {
	resp      response
	rateLimit http.Header
	drop      bool // close the connection instead of answering
	noCode    bool
}

const (
	maxBodyBytes = 1 << 20
	// badGatewayPage is what a load balancer in front of LD would send.
	badGatewayPage = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)

// handle runs one request through LD's layers: route, authentication, role,
// API version, rate limit, faults, then the operation.
func (s *Server) handle(r *http.Request, entry *AuditEntry) outcome {
	s.mu.Lock()
	faults := s.faults
	s.mu.Unlock()
	out := outcome{noCode: faults.NoCodeErrors}

	if err := sleep(r.Context(), s.opts.Latency+faults.Latency); err != nil {
		entry.Fault = FaultCanceled
		out.drop = true
		return out
	}
	rt, status := parseRoute(r.Method, r.URL.EscapedPath())
	switch status {
	case http.StatusNotFound:
		out.resp = notFound("Invalid resource identifier")
		return out
	case http.StatusMethodNotAllowed:
		out.resp = errorResponse(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed")
		return out
	}
	entry.Route = rt.name

	s.mu.Lock()
	grant, known := s.tokens[r.Header.Get("Authorization")]
	s.mu.Unlock()
	if !known {
		// A "Bearer " prefix lands here too: LD wants the raw token.
		out.resp = errorResponse(http.StatusUnauthorized, "unauthorized", "Invalid access token")
		return out
	}
	entry.TokenID = grant.id
	if rt.mutates() && grant.role != RoleWriter {
		out.resp = errorResponse(http.StatusForbidden, "forbidden", "Forbidden. Access to the requested resource was denied.")
		return out
	}
	if v := s.opts.RequireAPIVersion; v != "" && r.Header.Get("LD-API-Version") != v {
		out.resp = invalidRequest(fmt.Sprintf("LD-API-Version must be %s", v))
		return out
	}

	s.mu.Lock()
	headers, admitted := s.limiter.admit(s.opts.Now(), rt.name)
	var plan faultPlan
	if admitted {
		plan = faults.draw(s.faultRNG)
	}
	s.mu.Unlock()
	out.rateLimit = headers
	if !admitted {
		out.resp = errorResponse(http.StatusTooManyRequests, "rate_limited", "You've exceeded the API rate limit. Try again later.")
		return out
	}

	if plan.stall > 0 {
		entry.Fault = FaultStall
		if err := sleep(r.Context(), plan.stall); err != nil {
			entry.Fault = FaultCanceled
			out.drop = true
			return out
		}
	}
	switch {
	case plan.drop:
		entry.Fault = FaultDrop
		out.drop = true
		return out
	case plan.html502:
		entry.Fault = FaultHTML502
		out.resp = response{status: http.StatusBadGateway, contentType: "text/html", body: []byte(badGatewayPage)}
		return out
	case plan.status5xx != 0:
		entry.Fault = Fault5xxBefore
		out.resp = serverError(plan.status5xx)
		return out
	}

	out.resp = s.dispatch(r, rt, grant.id, faults)

	switch {
	case plan.dropAfter:
		entry.Fault = FaultDropAfter
		out.drop = true
	case plan.error5xxAfter:
		entry.Fault = Fault5xxAfter
		out.resp = serverError(http.StatusInternalServerError)
	}
	return out
}

// serverError mixes the shapes a client meets: LD's JSON for 500, plain text
// from the infrastructure for 502 and 503.
func serverError(status int) response {
	if status == http.StatusInternalServerError {
		return errorResponse(status, "internal_server_error", "An internal error occurred. Try again later.")
	}
	return response{status: status, contentType: "text/plain; charset=utf-8", body: []byte(http.StatusText(status) + "\n")}
}

func (s *Server) dispatch(r *http.Request, rt route, tokenID string, faults Faults) response {
	switch rt.name {
	case RouteListEnvironments:
		return s.list(rt.project, r.URL.RawQuery, faults.ShuffleOrder)
	case RouteGetEnvironment:
		return s.get(rt.project, rt.environment)
	case RouteDeleteEnvironment:
		return s.delete(rt.project, rt.environment, tokenID)
	}
	body, resp, ok := readJSONBody(r)
	if !ok {
		return resp
	}
	if rt.name == RouteCreateEnvironment {
		return s.create(rt.project, body, tokenID, faults.ListLag)
	}
	return s.patch(rt.project, rt.environment, body, tokenID)
}

// readJSONBody insists on a JSON content type (UNVERIFIED: what LD answers
// to another type; a 400 catches client bugs) and a body of sane size.
func readJSONBody(r *http.Request) ([]byte, response, bool) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != jsonType {
		return nil, invalidRequest("Content-Type must be application/json"), false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, invalidRequest("Invalid request body"), false
	}
	if len(body) > maxBodyBytes {
		return nil, errorResponse(http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large"), false
	}
	return body, response{}, true
}

// write sends out and logs the request. The audit entry is appended before
// the response leaves, so a client that has its answer can rely on the log.
func (s *Server) write(w http.ResponseWriter, out outcome, entry AuditEntry) {
	if out.drop {
		s.mu.Lock()
		s.audit = appendLog(s.audit, s.opts.LogLimit, entry)
		s.mu.Unlock()
		dropConnection(w)
		return
	}
	s.mu.Lock()
	if out.resp.err != nil {
		out.resp = out.resp.err.render(s.ids.uuid(), out.noCode)
	}
	entry.Status = out.resp.status
	s.audit = appendLog(s.audit, s.opts.LogLimit, entry)
	s.mu.Unlock()

	h := w.Header()
	for k, v := range out.rateLimit {
		h[k] = v
	}
	if out.resp.contentType != "" {
		h.Set("Content-Type", out.resp.contentType)
	}
	if out.resp.body != nil {
		h.Set("Content-Length", strconv.Itoa(len(out.resp.body)))
	}
	w.WriteHeader(out.resp.status)
	_, _ = w.Write(out.resp.body) // the client hanging up is its own business
}

// errorBody is LD's error representation: {"code","message","id"}.
type errorBody struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
}

func (e *apiError) render(id string, noCode bool) response {
	body := errorBody{Code: e.code, Message: e.message, ID: id}
	if noCode && e.status == http.StatusBadRequest {
		// LD's real code-less 400s carry no id either.
		body = errorBody{Message: e.message}
	}
	return jsonResponse(e.status, body)
}

// dropConnection closes the connection without a response. Without a
// hijackable connection (an httptest.ResponseRecorder), ErrAbortHandler is the
// net/http way to abort.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close() // nothing to do about a failed close of a dropped conn
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// environmentsBody is LD's Environments representation.
type environmentsBody struct {
	Links      map[string]Link `json:"_links"`
	TotalCount *int            `json:"totalCount,omitempty"`
	Items      []Environment   `json:"items"`
}

func (s *Server) list(projectKey, rawQuery string, shuffle bool) response {
	req, err := parseListQuery(rawQuery, s.opts.DefaultLimit, s.opts.MaxPageSize)
	if err != nil {
		return invalidRequest("Invalid query: " + err.Error())
	}
	s.mu.Lock()
	p, ok := s.projects[projectKey]
	if !ok {
		s.mu.Unlock()
		return notFound("Unknown project key " + strconv.Quote(projectKey))
	}
	v := p.listView(req.filter, req.sort, s.opts.Now())
	total := len(v.items)
	page := v.items[min(req.offset, total):min(req.offset+req.limit, total)]
	items := make([]Environment, len(page))
	for i, r := range page {
		items[i] = r.env.clone()
	}
	if shuffle {
		s.faultRNG.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	}
	s.mu.Unlock()

	body := environmentsBody{Links: req.pageLinks(projectKey, total), Items: items}
	if !s.opts.OmitTotalCount {
		body.TotalCount = &total
	}
	return jsonResponse(http.StatusOK, body)
}

func (s *Server) get(projectKey, key string) response {
	env, resp, ok := s.lookup(projectKey, key)
	if !ok {
		return resp
	}
	return jsonResponse(http.StatusOK, env)
}

// lookup finds an environment for get; ListLag does not hide it there.
func (s *Server) lookup(projectKey, key string) (Environment, response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[projectKey]
	if !ok {
		return Environment{}, notFound("Unknown project key " + strconv.Quote(projectKey)), false
	}
	r, ok := p.byKey[key]
	if !ok {
		return Environment{}, notFound("Unknown environment key " + strconv.Quote(key)), false
	}
	return r.env.clone(), response{}, true
}

func (s *Server) create(projectKey string, body []byte, tokenID string, listLag time.Duration) response {
	s.mu.Lock()
	_, known := s.projects[projectKey]
	s.mu.Unlock()
	if !known {
		return notFound("Unknown project key " + strconv.Quote(projectKey))
	}
	post, err := decodeEnvironmentPost(body)
	if err != nil {
		return invalidRequest("Invalid request body: " + err.Error())
	}
	env, source := post.environment()

	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[projectKey]
	if _, exists := p.byKey[env.Key]; exists {
		// UNVERIFIED: LD's exact body for a duplicate key. The spec's only 409
		// example is optimistic_locking_error; a distinct code here keeps
		// clients honest about treating any 409 as "GET and decide".
		return errorResponse(http.StatusConflict, "conflict", fmt.Sprintf("An environment with key %q already exists in this project", env.Key))
	}
	if source.key != "" {
		src, ok := p.byKey[source.key]
		if !ok {
			// UNVERIFIED: LD may answer 400 here; the research found no example.
			return notFound("Unknown source environment key " + strconv.Quote(source.key))
		}
		if source.version != 0 && source.version != src.env.Version {
			return errorResponse(http.StatusConflict, "optimistic_locking_error", "Conflict. Optimistic lock error. Try again later.")
		}
		env.ClonedFrom = source.key
	}
	now := s.opts.Now()
	env.CreatedOn = now
	s.ids.fillIdentity(projectKey, &env)
	var visibleAt time.Time
	if listLag > 0 {
		visibleAt = now.Add(listLag)
	}
	p.insert(newRecord(env, visibleAt))
	s.mutations = appendLog(s.mutations, s.opts.LogLimit, Mutation{
		Time: now, Op: OpCreate, Project: projectKey, Key: env.Key, TokenID: tokenID,
		ClonedFrom: source.key, SourceVersion: source.version,
	})
	return jsonResponse(http.StatusCreated, env.clone())
}

func (s *Server) delete(projectKey, key, tokenID string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[projectKey]
	if !ok {
		return notFound("Unknown project key " + strconv.Quote(projectKey))
	}
	r, ok := p.byKey[key]
	if !ok {
		return notFound("Unknown environment key " + strconv.Quote(key))
	}
	if len(p.byKey) == 1 {
		// UNVERIFIED: LD rejects deleting a project's last environment; the
		// status and body are undocumented.
		return invalidRequest("Cannot delete the last environment in a project")
	}
	p.remove(r)
	s.mutations = appendLog(s.mutations, s.opts.LogLimit, Mutation{Time: s.opts.Now(), Op: OpDelete, Project: projectKey, Key: key, TokenID: tokenID})
	return response{status: http.StatusNoContent}
}

func (s *Server) patch(projectKey, key string, body []byte, tokenID string) response {
	ops, err := decodePatch(body)
	if err != nil {
		return invalidRequest("Invalid request body: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[projectKey]
	if !ok {
		return notFound("Unknown project key " + strconv.Quote(projectKey))
	}
	r, ok := p.byKey[key]
	if !ok {
		return notFound("Unknown environment key " + strconv.Quote(key))
	}
	env, err := applyPatch(r.env.clone(), ops)
	if err != nil {
		return invalidRequest("Invalid patch: " + err.Error())
	}
	env.Version++
	r.env = env
	r.reindex()
	clear(p.views)
	s.mutations = appendLog(s.mutations, s.opts.LogLimit, Mutation{Time: s.opts.Now(), Op: OpUpdate, Project: projectKey, Key: key, TokenID: tokenID})
	return jsonResponse(http.StatusOK, env.clone())
}

// decodeStrict decodes exactly one JSON value into v.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decoding JSON: trailing data after the value")
	}
	return nil
}
