package admin

// status is the API's status area.
type status struct{ a *API }

func (p status) routes() []route { return nil }
