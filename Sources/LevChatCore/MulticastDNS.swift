/// The records the embedded mDNS responder publishes for one room, and its answers (issue 19;
/// Docs/PROTOCOL.md, "Discovery without avahi-daemon"): the same `_levchat._tcp` records Avahi
/// publishes for a room (RFC 6763 §4–§6), built, answered and checked for conflicts here, without
/// I/O, so that each rule has its unit test. `LevChatMDNS` sends and receives the packets.
public struct MulticastDNSService: Hashable, Sendable {
    /// RFC 6762 §10: records that hold a host name (SRV, addresses) live 120 s, the others 75 min.
    public static let hostTTL: UInt32 = 120
    public static let otherTTL: UInt32 = 4500
    public static let domain = DNSName(dotted: "local")!
    public static let serviceType = DNSName(dotted: "\(RoomAdvertisement.serviceType).local")!
    /// RFC 6763 §9: the names of the service types present on the link.
    public static let serviceTypes = DNSName(dotted: "_services._dns-sd._udp.local")!

    public private(set) var instance: DNSName
    public private(set) var host: DNSName
    public let port: UInt16
    public let txt: [[UInt8]]
    /// The instance label as advertised first (renames after a conflict add ` (2)`, ` (3)`, …).
    public let baseInstanceLabel: String
    public let baseHostLabel: String
    public private(set) var renames = 0

    /// `instanceLabel` is the advertisement's instance name; `hostLabel` the host name's first
    /// label (`.local` follows). Nil if a name would be too long for DNS.
    public init?(instanceLabel: String, hostLabel: String, port: Int, txt: [String]) {
        guard let instance = Self.serviceType.prepending(instanceLabel), let host = Self.domain.prepending(hostLabel),
              (1...65535).contains(port), txt.allSatisfy({ $0.utf8.count <= 255 }) else { return nil }
        self.instance = instance
        self.host = host
        self.port = UInt16(port)
        self.txt = txt.map { Array($0.utf8) }
        baseInstanceLabel = instanceLabel
        baseHostLabel = hostLabel
    }

    public init?(_ advertisement: RoomAdvertisement, hostLabel: String) {
        self.init(instanceLabel: advertisement.instanceName, hostLabel: hostLabel, port: advertisement.port, txt: advertisement.txtRecord)
    }

    /// The instance label now (after any rename).
    public var instanceLabel: String { String(decoding: instance.labels[0], as: UTF8.self) }

    // MARK: Records

    /// Every record of the room on an interface with these addresses (4 or 16 bytes each).
    /// `ttl` nil: the usual lifetimes; 0: a goodbye (RFC 6762 §10.1).
    public func records(addresses: [[UInt8]], ttl: UInt32? = nil) -> [DNSRecord] {
        [pointer(ttl: ttl), serviceTypePointer(ttl: ttl), service(ttl: ttl), text(ttl: ttl)] + addressRecords(addresses, ttl: ttl)
    }

    func pointer(ttl: UInt32? = nil) -> DNSRecord {
        DNSRecord(name: Self.serviceType, ttl: ttl ?? Self.otherTTL, data: .ptr(instance))
    }

    func serviceTypePointer(ttl: UInt32? = nil) -> DNSRecord {
        DNSRecord(name: Self.serviceTypes, ttl: ttl ?? Self.otherTTL, data: .ptr(Self.serviceType))
    }

    func service(ttl: UInt32? = nil) -> DNSRecord {
        DNSRecord(name: instance, ttl: ttl ?? Self.hostTTL, data: .srv(priority: 0, weight: 0, port: port, target: host), cacheFlush: true)
    }

    func text(ttl: UInt32? = nil) -> DNSRecord {
        DNSRecord(name: instance, ttl: ttl ?? Self.otherTTL, data: .txt(txt), cacheFlush: true)
    }

    func addressRecords(_ addresses: [[UInt8]], ttl: UInt32? = nil) -> [DNSRecord] {
        addresses.compactMap { address in
            switch address.count {
            case 4: DNSRecord(name: host, ttl: ttl ?? Self.hostTTL, data: .a(address), cacheFlush: true)
            case 16: DNSRecord(name: host, ttl: ttl ?? Self.hostTTL, data: .aaaa(address), cacheFlush: true)
            default: nil
            }
        }
    }

    // MARK: Probing, announcing, goodbye

    /// RFC 6762 §8.1: a query for the instance and host names (ANY, unicast response wanted),
    /// with the records we mean to own in the authority section, for ties.
    public func probe(addresses: [[UInt8]]) -> DNSMessage {
        DNSMessage(questions: [DNSQuestion(name: instance, type: .any, unicastResponse: true),
                               DNSQuestion(name: host, type: .any, unicastResponse: true)],
                   authorities: [service(), text()] + addressRecords(addresses))
    }

    /// RFC 6762 §8.3: every record, unsolicited; with `goodbye`, at TTL 0 (§10.1).
    public func announcement(addresses: [[UInt8]], goodbye: Bool = false) -> DNSMessage {
        DNSMessage(flags: DNSMessage.responseFlag | DNSMessage.authoritativeFlag,
                   answers: records(addresses: addresses, ttl: goodbye ? 0 : nil))
    }

    // MARK: Answering

    /// The response to a query that arrived on an interface with these addresses, or nil when
    /// it asks nothing of ours (or all of it is in its known answers).
    ///
    /// Answers go in the answer section, and what the asker will want next in the additional
    /// one (RFC 6763 §12): with a PTR, the SRV, TXT and addresses; with an SRV, the addresses.
    /// A record the query already lists as a known answer with at least half our TTL left is
    /// left out (RFC 6762 §7.1). `legacy`: the query came from a port other than 5353 (§6.7),
    /// so the answer repeats its id and questions and its TTLs are at most 10 s.
    public func answer(_ query: DNSMessage, addresses: [[UInt8]], legacy: Bool = false) -> DNSMessage? {
        guard !query.isResponse, query.opcode == 0, query.responseCode == 0 else { return nil }
        var answers: [DNSRecord] = []
        for question in query.questions where question.recordClass == 1 || question.recordClass == 255 {
            for record in records(addresses: addresses) where record.name == question.name {
                if question.type == .any || question.type == record.type { answers.append(record) }
            }
        }
        answers = answers.filter { record in
            !query.answers.contains { known in known.name == record.name && known.data == record.data && known.ttl >= record.ttl / 2 }
        }
        guard !answers.isEmpty else { return nil }
        var additionals: [DNSRecord] = []
        if answers.contains(where: { $0.type == .ptr && $0.name == Self.serviceType }) {
            additionals += [service(), text()]
        }
        if answers.contains(where: { $0.type == .srv }) || !additionals.isEmpty { additionals += addressRecords(addresses) }
        additionals = additionals.filter { !answers.contains($0) }
        var deduplicated: [DNSRecord] = []
        for record in answers where !deduplicated.contains(record) { deduplicated.append(record) }
        if legacy {
            // §6.7: a legacy resolver reads no cache-flush bit and must not keep the records long.
            func capped(_ record: DNSRecord) -> DNSRecord {
                var record = record
                record.ttl = min(record.ttl, 10)
                record.cacheFlush = false
                return record
            }
            return DNSMessage(id: query.id, flags: DNSMessage.responseFlag | DNSMessage.authoritativeFlag, questions: query.questions,
                              answers: deduplicated.map(capped), additionals: additionals.map(capped))
        }
        return DNSMessage(flags: DNSMessage.responseFlag | DNSMessage.authoritativeFlag, answers: deduplicated, additionals: additionals)
    }

    /// Whether `message` (from someone else) claims one of our unique names with other data
    /// (RFC 6762 §9): a response with an SRV, TXT or address record of that name that is not
    /// ours, or, while `probing`, a probe for that name that wins the tie-break of §8.2
    /// (its authority records compare greater than ours, byte by byte).
    public func conflicts(with message: DNSMessage, addresses: [[UInt8]], probing: Bool) -> Bool {
        let ours = [service(), text()] + addressRecords(addresses)
        let uniqueNames: Set<DNSName> = [instance, host]
        if message.isResponse {
            for record in message.answers + message.additionals where uniqueNames.contains(record.name) && record.ttl > 0 {
                switch record.data {
                case .srv, .txt, .a, .aaaa:
                    // Another address of ours is not a conflict (a host may have several).
                    if record.name == host && (record.type == .a || record.type == .aaaa) && addresses.contains(Self.addressBytes(record.data)) { continue }
                    if !ours.contains(where: { $0.name == record.name && $0.data == record.data }) { return true }
                case .ptr, .other:
                    continue
                }
            }
            return false
        }
        guard probing else { return false }
        for name in uniqueNames where message.questions.contains(where: { $0.name == name }) {
            let theirs = message.authorities.filter { $0.name == name }
            guard !theirs.isEmpty else { continue }
            let mine = ours.filter { $0.name == name }
            if Self.tieBreak(theirs, beats: mine) { return true }
        }
        return false
    }

    /// RFC 6762 §8.2: the records sorted (class, type, then data), compared pairwise; the first
    /// difference decides, and the longer list wins a tie.
    static func tieBreak(_ theirs: [DNSRecord], beats mine: [DNSRecord]) -> Bool {
        func key(_ record: DNSRecord) -> [UInt8] {
            let type = record.type.rawValue
            return [UInt8(record.recordClass >> 8), UInt8(record.recordClass & 0xFF), UInt8(type >> 8), UInt8(type & 0xFF)]
                + rawData(record.data)
        }
        let theirKeys = theirs.map(key).sorted { $0.lexicographicallyPrecedes($1) }
        let myKeys = mine.map(key).sorted { $0.lexicographicallyPrecedes($1) }
        for (their, my) in zip(theirKeys, myKeys) where their != my {
            return my.lexicographicallyPrecedes(their)
        }
        return theirKeys.count > myKeys.count
    }

    /// The record data as the tie-break compares it: names uncompressed, in their labels' bytes.
    static func rawData(_ data: DNSRecordData) -> [UInt8] {
        func name(_ name: DNSName) -> [UInt8] { name.labels.flatMap { [UInt8($0.count)] + $0 } + [0] }
        switch data {
        case .a(let bytes), .aaaa(let bytes), .other(_, let bytes): return bytes
        case .ptr(let target): return name(target)
        case .srv(let priority, let weight, let port, let target):
            return [priority, weight, port].flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } + name(target)
        case .txt(let strings): return strings.flatMap { [UInt8($0.count)] + $0 }
        }
    }

    static func addressBytes(_ data: DNSRecordData) -> [UInt8] {
        switch data {
        case .a(let bytes), .aaaa(let bytes): bytes
        case .ptr, .srv, .txt, .other: []
        }
    }

    /// After a conflict: the next names, ` (2)` then ` (3)`… on the instance (RFC 6763 §9 style)
    /// and `-2`, `-3`… on the host. False when no longer name fits.
    public mutating func rename() -> Bool {
        let next = renames + 2
        guard let instance = Self.serviceType.prepending("\(baseInstanceLabel) (\(next))"),
              let host = Self.domain.prepending("\(baseHostLabel)-\(next)") else { return false }
        self.instance = instance
        self.host = host
        renames += 1
        return true
    }
}
