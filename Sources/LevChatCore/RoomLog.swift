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

    /// The history split into chunks that each fit in one frame. Sizes are measured exactly (JSON
    /// escaping can grow a text sixfold); this runs only when someone joins.
    public func historyChunks(maxBytes: Int = 60 * 1024) -> [[ChatRecord]] {
        var chunks: [[ChatRecord]] = []
        var current: [ChatRecord] = []
        var size = 64
        for record in history {
            let recordSize = WireMessage.msg(record).encoded().count + 1
            if !current.isEmpty && size + recordSize > maxBytes {
                chunks.append(current)
                current = []
                size = 64
            }
            current.append(record)
            size += recordSize
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }
}

extension ChatRecord {
    /// Memory a record holds, for the history's byte bound.
    var approximateSize: Int { 128 + from.utf8.count + text.utf8.count }
}
