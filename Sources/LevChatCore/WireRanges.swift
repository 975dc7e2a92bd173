/// Range checks of every number and count a peer sends (Docs/PROTOCOL.md, "Ranges"): applied at
/// decode, so a negative time, an `Int.min` sequence number, a far-future time or a roster of a
/// million entries is a malformed message, never a value the state machines see.
enum WireRanges {
    /// Sequence numbers, counters, epochs and ordinals: 0 … 2^62 (a run's numbers start at
    /// `RunSequence.first`, about 2^60.6 today).
    static let largest = 1 << 62
    /// Times in milliseconds since 1970: up to the year 2100.
    static let latestTime: Int64 = 4_102_444_800_000
    static let maximumMembers = 1024
    static let maximumEndpoints = 16
    static let maximumEndpointBytes = 80
    static let maximumRecords = 4096

    static func check(_ message: WireMessage) throws(MessageError) {
        switch message {
        case .hello(let hello):
            try versions(hello.versions)
            if let gen = hello.gen { try number(gen, "generation") }
        case .challenge(let challenge):
            try number(challenge.version, "version")
            if let gen = challenge.gen { try number(gen, "generation") }
        case .rekey(let rekey):
            try number(rekey.gen, "generation")
        case .auth, .authOK, .error, .bye, .probe, .data, .unknown:
            break
        case .fetch(let fetch):
            try number(fetch.offset, "file offset")
            guard FileOffer.isToken(fetch.file) else { throw .malformed("not a file token") }
            // Base64 of a 32-byte key and a 64-byte signature, and not one without the other.
            guard (fetch.key == nil) == (fetch.sig == nil), (fetch.key?.utf8.count ?? 0) <= 44, (fetch.sig?.utf8.count ?? 0) <= 88 else {
                throw .malformed("a fetch's key and signature")
            }
            guard (fetch.cipher?.utf8.count ?? 0) <= 32 else { throw .malformed("a cipher name over 32 bytes") }
        case .done(let done):
            guard FileOffer.isHex(done.sha256, count: 64) else { throw .malformed("a done without a SHA-256") }
        case .file(let start):
            try number(start.size, "file size")
            try number(start.offset, "file offset")
            guard start.offset <= start.size else { throw .malformed("a file offset past its size") }
            guard (start.cipher?.utf8.count ?? 0) <= 32 else { throw .malformed("a cipher name over 32 bytes") }
        case .join(let join):
            try port(join.listenPort)
            try endpoints(join.endpoints)
            try number(join.lastSeq, "last seq")
            try number(join.claim.counter, "name counter")
        case .welcome(let welcome):
            try member(welcome.you)
            try roster(welcome.roster)
            try number(welcome.historyCount, "history count")
            try number(welcome.gen, "generation")
            if let from = welcome.resumeFrom { try number(from, "resume point") }
        case .history(let chunk):
            try records(chunk.records)
        case .presence(let presence):
            try member(presence.member)
            try time(presence.time)
            if let roster = presence.roster { try self.roster(roster) }
            if let previous = presence.previous { try member(previous) }
        case .chat(let chat):
            try number(chat.id.seq, "sender seq")
        case .msg(let record):
            try self.record(record)
        case .ping(let ping):
            try number(ping.lastSeq, "last seq")
        case .redirect(let redirect):
            try endpoints(redirect.endpoints)
            if let epoch = redirect.epoch { try number(epoch, "epoch") }
            if let ordinal = redirect.ordinal { try number(ordinal, "ordinal") }
        case .resume(let resume):
            try number(resume.ordinal, "ordinal")
            try port(resume.listenPort)
            try endpoints(resume.endpoints)
            try number(resume.lastSeq, "last seq")
            try number(resume.claim.counter, "name counter")
            try number(resume.gen, "generation")
            guard resume.tail.count <= Resume.maximumTail else { throw .malformed("a resume tail of \(resume.tail.count) marks") }
            for mark in resume.tail { try number(mark.seq, "seq"); try number(mark.id.seq, "sender seq") }
        case .handover(let handover):
            try number(handover.epoch, "epoch")
            try member(handover.host)
        case .push(let push):
            try records(push.records)
        case .nick(let rename):
            try number(rename.claim.counter, "name counter")
        }
    }

    static func number(_ value: Int, _ what: String) throws(MessageError) {
        guard value >= 0 && value <= largest else { throw .malformed("\(what) \(value) out of range") }
    }

    static func time(_ millis: Int64) throws(MessageError) {
        guard millis >= 0 && millis <= latestTime else { throw .malformed("time \(millis) out of range") }
    }

    private static func port(_ port: Int) throws(MessageError) {
        guard (0...65535).contains(port) else { throw .malformed("port \(port) out of range") }
    }

    private static func versions(_ range: VersionRange) throws(MessageError) {
        try number(range.min, "version")
        try number(range.max, "version")
    }

    private static func endpoints(_ list: [String]) throws(MessageError) {
        guard list.count <= maximumEndpoints, list.allSatisfy({ $0.utf8.count <= maximumEndpointBytes }) else {
            throw .malformed("too many or too long endpoints")
        }
    }

    private static func member(_ member: Member) throws(MessageError) {
        try number(member.ordinal, "ordinal")
        try endpoints(member.endpoints)
        if let claim = member.claim { try number(claim.counter, "name counter") }
    }

    private static func roster(_ roster: RosterSnapshot) throws(MessageError) {
        try number(roster.epoch, "epoch")
        guard roster.members.count <= maximumMembers else { throw .malformed("a roster of \(roster.members.count) members") }
        for entry in roster.members { try member(entry) }
    }

    private static func record(_ record: ChatRecord) throws(MessageError) {
        try number(record.seq, "seq")
        try number(record.id.seq, "sender seq")
        try time(record.time)
    }

    private static func records(_ list: [ChatRecord]) throws(MessageError) {
        guard list.count <= maximumRecords else { throw .malformed("\(list.count) records in one message") }
        for entry in list { try record(entry) }
    }
}
