import DequeModule

/// The host's own lines on their way into its members' sockets: the host's send window
/// (Docs/PROTOCOL.md, "Flow control"), the host's counterpart of `MemberSession.isSendWindowFull`.
///
/// The host performs its own line's broadcast and tells the window whom it wrote to (`posted`);
/// each write that reaches a member's socket (or fails with its link) is `written`; a member
/// gone is `closed`. While the window is full the peer reads no more input, so a file piped into
/// `create` goes out at the pace of the slowest member instead of piling up in the host's buffers.
/// A member that takes none of the window's lines for `stall` after the oldest was posted is
/// holding the host's input for good: `stalled` names it, and the host drops it.
public struct HostSendWindow: Sendable {
    public struct LineID: Hashable, Sendable {
        let value: Int
    }

    private struct Line {
        let id: LineID
        let bytes: Int
        let posted: Duration
        var unwritten: Set<ConnectionID>
    }

    public let countLimit: Int
    public let byteLimit: Int
    public let stall: Duration
    /// Oldest first; a line leaves once every recipient has it.
    private var lines: Deque<Line> = []
    private var bytes = 0
    private var nextLine = 0

    public init(countLimit: Int, byteLimit: Int, stall: Duration) {
        self.countLimit = countLimit
        self.byteLimit = byteLimit
        self.stall = stall
    }

    /// Lines still on their way to some member.
    public var count: Int { lines.count }
    public var bytesInFlight: Int { bytes }

    /// The host may not take another line of its user's input.
    public var isFull: Bool { !lines.isEmpty && (lines.count >= countLimit || bytes >= byteLimit) }

    /// The host wrote its own line (`bytes` framed) to these members. A line with no recipients
    /// is nowhere on its way and takes no room.
    public mutating func posted(bytes size: Int, to recipients: some Sequence<ConnectionID>, now: Duration) -> LineID {
        let id = LineID(value: nextLine)
        nextLine += 1
        let unwritten = Set(recipients)
        guard !unwritten.isEmpty else { return id }
        lines.append(Line(id: id, bytes: size, posted: now, unwritten: unwritten))
        bytes += size
        return id
    }

    /// That line reached that member's socket (or its write failed with the link). True when a
    /// line left the window (the host may read input again, or a stall moved on).
    @discardableResult
    public mutating func written(_ line: LineID, to member: ConnectionID) -> Bool {
        guard let index = lines.firstIndex(where: { $0.id == line }), lines[index].unwritten.remove(member) != nil,
              lines[index].unwritten.isEmpty else { return false }
        return settle()
    }

    /// The member is gone: nothing waits for it any more. True when a line left the window.
    @discardableResult
    public mutating func closed(_ member: ConnectionID) -> Bool {
        for index in lines.indices { lines[index].unwritten.remove(member) }
        return settle()
    }

    /// When the oldest line's stall time runs out (nil with nothing in flight).
    public var stallDeadline: Duration? { lines.first.map { $0.posted + stall } }

    /// Members that have taken none of the window's lines, `stall` after the oldest was posted.
    /// A channel completes its writes in order, so these are the members holding every line; one
    /// merely a few lines behind is left alone.
    public func stalled(now: Duration) -> [ConnectionID] {
        guard let oldest = lines.first, now >= oldest.posted + stall else { return [] }
        return oldest.unwritten.filter { member in lines.allSatisfy { $0.unwritten.contains(member) } }
            .sorted { $0.raw < $1.raw }
    }

    private mutating func settle() -> Bool {
        let before = lines.count
        lines.removeAll { line in
            guard line.unwritten.isEmpty else { return false }
            bytes -= line.bytes
            return true
        }
        return lines.count != before
    }
}
