package admin

// sessions is the API's sessions area.
type sessions struct{ a *API }

func (p sessions) routes() []route { return nil }
