package admin

// messages is the API's messages area.
type messages struct{ a *API }

func (p messages) routes() []route { return nil }
