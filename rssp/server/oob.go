package server

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"

	"github.com/csctoken/csctoken/rssp/service"
)

// The approval page is where the user answers an out-of-band (PasswordOOB)
// request: the notified link carries a random token, the page shows what
// is to be signed, and a form approves or denies it once. No JavaScript,
// no external assets.
var approvalTmpl = template.Must(template.New("approval").Funcs(template.FuncMap{"inc": func(i int) int { return i + 1 }}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — {{.Service}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
h1{font-size:1.5rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc;vertical-align:top}
code{word-break:break-all;font-size:.9rem}
.actions{display:flex;gap:1rem;margin-top:1.5rem}
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:.3rem;border:1px solid #333;cursor:pointer}
button.approve{background:#0b5d1e;color:#fff;border-color:#0b5d1e}
button.deny{background:#fff;color:#8a1c1c;border-color:#8a1c1c}
.msg{padding:.8rem 1rem;border-radius:.3rem;background:#eef3f8}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{if .Message}}<p class="msg" role="status">{{.Message}}</p>{{end}}
{{with .Req}}
<p>{{$.Service}} asks you, <strong>{{.User}}</strong>, to approve a signature request.</p>
<table>
<tr><th scope="row">Credential</th><td>{{.Credential}}</td></tr>
<tr><th scope="row">Signatures</th><td>{{.NumSignatures}}</td></tr>
{{if .Description}}<tr><th scope="row">Purpose</th><td>{{.Description}}</td></tr>{{end}}
{{if .HashAlgo}}<tr><th scope="row">Hash algorithm</th><td>{{.HashAlgo}}</td></tr>{{end}}
{{range $i, $h := $.Hashes}}<tr><th scope="row">Document {{inc $i}}</th><td><code>{{$h}}</code></td></tr>{{end}}
<tr><th scope="row">Expires</th><td>{{.Expires.Format "2006-01-02 15:04:05 MST"}}</td></tr>
</table>
<form method="post" action="approve">
<input type="hidden" name="t" value="{{$.Token}}">
<div class="actions">
<button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
{{end}}
</main>
</body>
</html>
`))

type approvalView struct {
	Title, Service, Message, Token string
	Req                            *service.Approval
	Hashes                         []string
}

func (s *Server) renderApproval(w http.ResponseWriter, status int, v approvalView) {
	v.Service = s.opt.Info.Name
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY") // frame-ancestors' equivalent for older browsers
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := approvalTmpl.Execute(w, v); err != nil {
		s.log.Error("approval page", "err", err)
	}
}

func (s *Server) approvalPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	req, err := s.svc.ApprovalRequest(r.Context(), tok)
	if err != nil {
		s.approvalFailed(w, err)
		return
	}
	v := approvalView{Title: "Approve a signature", Token: tok, Req: &req}
	for _, h := range req.Hashes {
		v.Hashes = append(v.Hashes, base64.StdEncoding.EncodeToString(h))
	}
	s.renderApproval(w, http.StatusOK, v)
}

func (s *Server) approvalDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		s.renderApproval(w, http.StatusBadRequest, approvalView{Title: "Request not understood", Message: "The form could not be read."})
		return
	}
	d := r.PostForm.Get("decision")
	if d != "approve" && d != "deny" {
		s.renderApproval(w, http.StatusBadRequest, approvalView{Title: "Request not understood", Message: "Choose Approve or Deny."})
		return
	}
	if err := s.svc.Decide(r.Context(), r.PostForm.Get("t"), d == "approve"); err != nil {
		s.approvalFailed(w, err)
		return
	}
	msg := "You approved the request. You can close this page; the signing application continues."
	if d == "deny" {
		msg = "You denied the request. Nothing will be signed."
	}
	s.renderApproval(w, http.StatusOK, approvalView{Title: "Thank you", Message: msg})
}

func (s *Server) approvalFailed(w http.ResponseWriter, err error) {
	var p *service.Problem
	if errors.As(err, &p) && errors.Is(err, service.ErrInvalidRequest) {
		s.renderApproval(w, http.StatusNotFound, approvalView{Title: "Link not valid", Message: p.Description})
		return
	}
	s.log.Error("approval page", "err", err)
	s.renderApproval(w, http.StatusInternalServerError, approvalView{Title: "Something went wrong", Message: "Try again later."})
}
