import DequeModule

/// The room's message log as every peer keeps it: the total order by room sequence, the recent
/// history (bounded by count and bytes), and every message id seen, which is what duplicate
/// detection needs across host changes. Host and members keep the same log so any member can
/// become host with it.
public struct RoomLog: Sendable {
    public private(set) var history: Deque<ChatRecord> = []
    public private(set) var lastSeq = 0
    private var historyBytes = 0
    private var seen = SeenMessages()
    private let limits: RoomLimits

    public init(limits: RoomLimits = RoomLimits()) {
        self.limits = limits
    }

    /// Whether a message with this id was ever in this log (it may have aged out of the history).
    public func isDuplicate(_ id: MessageID) -> Bool { seen.contains(id) }

    /// Host side: gives a new message the next room sequence. Nil for a duplicate.
    public mutating func sequence(_ chat: Chat, key: String, time: Int64, late: Bool = false) -> ChatRecord? {
        guard !isDuplicate(chat.id) else { return nil }
        let record = ChatRecord(seq: lastSeq + 1, id: chat.id, from: chat.name, text: chat.text, time: time, late: late ? true : nil,
                                kind: chat.kind, key: key, sig: chat.sig)
        append(record)
        return record
    }

    /// Takes a record a host sequenced. False when this log already holds that sequence number.
    public mutating func apply(_ record: ChatRecord) -> Bool {
        guard record.seq > lastSeq else { return false }
        append(record)
        return true
    }

    /// The record at `seq`, while it is still in the history.
    public func record(at seq: Int) -> ChatRecord? {
        guard let first = history.first, seq >= first.seq, seq <= lastSeq else { return nil }
        let index = seq - first.seq
        return index < history.count && history[index].seq == seq ? history[index] : history.first { $0.seq == seq }
    }

    /// The newest records' positions, oldest first, for `resume`.
    public func tail(_ count: Int = Resume.maximumTail) -> [LogMark] {
        history.suffix(count).map { LogMark(seq: $0.seq, id: $0.id) }
    }

    /// Host side: the first sequence number where a member's log (as its `resume` tail reports it)
    /// stops agreeing with this one. Everything before it both logs hold alike.
    public func divergence(lastSeq memberLast: Int, tail: [LogMark]) -> Int {
        let oldest = history.first?.seq ?? lastSeq + 1
        for mark in tail.sorted(by: { $0.seq < $1.seq }) where mark.seq >= oldest {
            guard mark.seq <= lastSeq else { return lastSeq + 1 }
            if record(at: mark.seq)?.id != mark.id { return mark.seq }
        }
        return min(memberLast, lastSeq) + 1
    }

    /// Member side, after a new host answered `resume`: drops the records from `seq` on and
    /// returns them (the host's versions of those positions follow). Ids stay seen.
    public mutating func truncate(from seq: Int) -> [ChatRecord] {
        var dropped: [ChatRecord] = []
        while let last = history.last, last.seq >= seq {
            dropped.append(history.removeLast())
            historyBytes -= last.approximateSize
        }
        lastSeq = min(lastSeq, seq - 1)
        return dropped.reversed()
    }

    private mutating func append(_ record: ChatRecord) {
        lastSeq = record.seq
        seen.insert(record.id)
        history.append(record)
        historyBytes += record.approximateSize
        while history.count > limits.historyCount || (historyBytes > limits.historyBytes && history.count > 1) {
            historyBytes -= history.removeFirst().approximateSize
        }
    }

    /// The history split into chunks that each fit in one frame. Sizes are measured exactly (JSON
    /// escaping can grow a text sixfold); this runs only when someone joins.
    public func historyChunks(from seq: Int = 0, maxBytes: Int = 60 * 1024) -> [[ChatRecord]] {
        var chunks: [[ChatRecord]] = []
        var current: [ChatRecord] = []
        var size = 64
        for record in history where record.seq >= seq {
            let recordSize = WireMessage.msg(record).jsonEncoded().count + 1
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

/// Every message id seen, per sender: all sequence numbers up to a watermark, plus the few seen
/// above a gap (a message refused as too long, or one that arrived late after a host change).
/// Every message id seen, per sender: a watermark below which all were seen, and the ones seen
/// above it. A run of a sender numbers its lines from `RunSequence.first` (a multiple of 2^20),
/// so the watermark is kept per (node, block of 2^20 numbers); a block's first number is its
/// first line. Gaps are bounded: past `maximumAbove` ids above a watermark, the oldest gap is
/// given up (taken as seen).
struct SeenMessages: Sendable {
    struct Block: Hashable, Sendable {
        var node: NodeID
        var block: Int
    }

    static let maximumAbove = 4096
    private var upTo: [Block: Int] = [:]
    private var above: [Block: Set<Int>] = [:]

    private static func block(of id: MessageID) -> Block {
        Block(node: id.node, block: id.seq >> RunSequence.shift)
    }

    /// The watermark of a block nothing was seen in: just below its first number (0 for the
    /// first block, whose numbers start at 1).
    private static func start(of block: Block) -> Int {
        max((block.block << RunSequence.shift) - 1, 0)
    }

    func contains(_ id: MessageID) -> Bool {
        let block = Self.block(of: id)
        return id.seq <= upTo[block, default: Self.start(of: block)] || above[block]?.contains(id.seq) == true
    }

    mutating func insert(_ id: MessageID) {
        let block = Self.block(of: id)
        var mark = upTo[block, default: Self.start(of: block)]
        guard id.seq > mark else { return }
        var rest = above[block] ?? []
        rest.insert(id.seq)
        if rest.count > Self.maximumAbove, let lowest = rest.min() { mark = lowest - 1 }
        while rest.remove(mark + 1) != nil { mark += 1 }
        above[block] = rest.isEmpty ? nil : rest
        upTo[block] = mark
    }
}

extension ChatRecord {
    /// Memory a record holds, for the history's byte bound.
    var approximateSize: Int { 128 + from.utf8.count + text.utf8.count }
}
