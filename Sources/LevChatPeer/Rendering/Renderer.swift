import LevChatCore

/// Who is looking at the output: what a renderer needs besides the event.
struct Viewer: Sendable {
    var me: NodeID?
    var name: String?
    /// Members whose key is not the one remembered for their name (this run).
    var keyChanged: Set<NodeID> = []
    /// Every member's name as last known, the ones who left included (a file offered to one
    /// member names them).
    var names: [NodeID: String] = [:]
}

/// One line of output and what the console does with it.
struct Printed: Sendable {
    var text: ScreenText
    var bell = false
    /// The echo of this peer's own line: the screen replaces its pending line with it.
    var confirms: MessageID?
    init(_ text: ScreenText, bell: Bool = false, confirms: MessageID? = nil) {
        self.text = text
        self.bell = bell
        self.confirms = confirms
    }
}

/// What this user knows of a member's key (`/whois`).
struct KeyKnowledge: Sendable {
    /// The known_peers entry for the name: since when, and the fingerprint remembered.
    var known: (since: String, fingerprint: String)?
    var changed: Bool
    /// False with a throwaway identity (nothing is remembered).
    var remembering: Bool
}

/// Turns the room's events and answers into lines: `TextRenderer` for people, `JSONRenderer`
/// for programs (Docs/CLI.md). Each switches over every event, so a new event is a compile error
/// until both show it. `Console` routes what they give (stdout, the screen, the bell).
protocol Renderer: Sendable {
    /// Nothing for `.pending` (only the interactive screen shows a line on its way).
    func render(_ event: RoomEvent, viewer: Viewer) -> [Printed]
    func keyChanged(_ member: Member, previous: String, since: String) -> Printed
    func whois(_ member: Member, _ knowledge: KeyKnowledge) -> Printed
    func members(_ roster: RosterSnapshot, you: NodeID, keyChanged: Set<NodeID>) -> Printed
    func history(_ records: [ChatRecord], older: Int) -> [Printed]
    func room(code: RoomCode, name: String, port: Int) -> Printed
    func code(_ code: RoomCode) -> Printed
    /// How a run ended; nil where the exit status and stderr say it (text).
    func end(reason: String, message: String) -> Printed?
    /// The commands: one line each in text, so that each is escaped alone (a newline inside one
    /// `Printed` would be shown as `\x0A`); one event in JSON.
    func help() -> [Printed]
    /// An error as an event; nil where it goes to stderr (text).
    func error(_ message: String) -> Printed?
    /// Offers and transfers (nothing for progress that text output shows only every 10 %).
    func file(_ event: FileEvent) -> [Printed]
}
