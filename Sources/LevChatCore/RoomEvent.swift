/// What a peer shows its user. The CLI renders these as text lines or JSON objects.
public enum RoomEvent: Equatable, Sendable {
    /// A chat message; `replayed` for history shown on joining.
    case message(ChatRecord, replayed: Bool)
    case joined(Member, time: Int64)
    case left(Member, reason: String, time: Int64)
    /// This peer is in the room: its own entry and the roster.
    case entered(you: Member, roster: RosterSnapshot)
    /// The host told this member something went wrong with what it sent.
    case notice(String)
    /// The room has a new host; `previous` is the host before when it left or was lost (nil when
    /// it is still in the room, as after a split healed, or unknown).
    case hostChanged(previous: Member?, host: Member, epoch: Int, time: Int64)
    /// A member took a new name (`/nick`).
    case renamed(from: Member, to: Member, time: Int64)
    /// This peer's own line, on its way: shown as pending until the host's echo (a `message` with
    /// the same id) replaces it. Only the terminal screen shows it; text and JSON output do not.
    case pending(MessageID, text: String, kind: ChatKind)
}

/// Opaque handle of one authenticated connection, given by the transport.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public var description: String { "#\(raw)" }
}
