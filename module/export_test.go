package module

// WaitPreauthorized waits until the background pre-authorizations of every
// token's current login have ended (tests count service calls).
func (m *Module) WaitPreauthorized() {
	st, err := m.state()
	if err != nil {
		return
	}
	for _, t := range st.tokens {
		t.mu.Lock()
		p := t.preauth
		t.mu.Unlock()
		if p != nil {
			<-p.done
		}
	}
}
