import DequeModule

/// The room's message log as every peer keeps it: the total order by room sequence, the recent
/// history (bounded by count and bytes), and the highest sender sequence seen per node, which is
/// what duplicate detection needs. Host and members keep the same log so any member can become
/// host with it.
public struct RoomLog: Sendable {
    public private(set) var history: Deque<ChatRecord> = []
    public private(set) var lastSeq = 0
    private var historyBytes = 0
    private var lastSenderSeq: [NodeID: Int] = [:]
    private let limits: RoomLimits

    public init(limits: RoomLimits = RoomLimits()) {
        self.limits = limits
    }

    public func isDuplicate(_ id: MessageID) -> Bool {
        id.seq <= lastSenderSeq[id.node, default: 0]
    }

    /// Host side: gives a new message the next room sequence. Nil for a duplicate.
    public mutating func sequence(id: MessageID, from: String, text: String, time: Int64) -> ChatRecord? {
        guard !isDuplicate(id) else { return nil }
        let record = ChatRecord(seq: lastSeq + 1, id: id, from: from, text: text, time: time)
        append(record)
        return record
    }

    /// Member side: takes a record the host sequenced. False when it was already here.
    public mutating func apply(_ record: ChatRecord) -> Bool {
        guard record.seq > lastSeq else { return false }
        append(record)
        return true
    }

    private mutating func append(_ record: ChatRecord) {
        lastSeq = record.seq
        lastSenderSeq[record.id.node] = max(lastSenderSeq[record.id.node, default: 0], record.id.seq)
        history.append(record)
        historyBytes += record.approximateSize
        while history.count > limits.historyCount || (historyBytes > limits.historyBytes && history.count > 1) {
            historyBytes -= history.removeFirst().approximateSize
        }
    }

    /// The history split into chunks that each fit in one frame.
    public func historyChunks(maxBytes: Int = 48 * 1024) -> [[ChatRecord]] {
        var chunks: [[ChatRecord]] = []
        var current: [ChatRecord] = []
        var size = 0
        for record in history {
            if !current.isEmpty && size + record.approximateSize > maxBytes {
                chunks.append(current)
                current = []
                size = 0
            }
            current.append(record)
            size += record.approximateSize
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }
}

extension ChatRecord {
    /// An upper bound on its JSON size: text may grow by JSON escaping (\u00XX is 6 bytes).
    var approximateSize: Int { 160 + from.utf8.count * 6 + text.utf8.count * 6 / 4 + 64 }
}
