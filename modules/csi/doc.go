// Package csi spares the battery and the data plan of a client whose user
// is not looking at it: Client State Indication (XEP-0352,
// urn:xmpp:csi:0). While a session says it is <inactive/>, the presence
// updates addressed to it are held back, only the latest from each sender,
// and pushed when it says <active/> again (XEP-0352 §3.2); messages, IQs
// and presence that needs an answer (subscriptions, errors) go at once.
//
// The module is a Deliver hook that holds presence and two element
// handlers; what it holds it releases with Router.DeliverHeld. A session
// keeps its state while it hibernates (XEP-0198), and drops it when it
// ends.
package csi
