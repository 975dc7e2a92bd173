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

/// What a browser with no daemon makes of the records it hears on one link (one interface and
/// family; issue 19): a room is found once its PTR, SRV, TXT and an address of that family are
/// all held, found again when any of them changes, and removed when its PTR says goodbye or
/// expires. Times are monotonic and passed in, so each rule has its unit test.
public struct MulticastDNSBrowserCache: Sendable {
    /// 4 (an IPv4 link: A records) or 16 (IPv6: AAAA records).
    public let addressLength: Int
    /// Given to IPv6 link-local addresses as their scope (`fe80::1%lan0`).
    public let interface: String

    private var pointers: [DNSName: Expiring<Void>] = [:]
    private var services: [DNSName: Expiring<(port: Int, target: DNSName)>] = [:]
    private var texts: [DNSName: Expiring<[String: String]>] = [:]
    private var addresses: [DNSName: [[UInt8]: Duration]] = [:]
    private var reported: [DNSName: DiscoveredService] = [:]

    struct Expiring<Value: Sendable>: Sendable {
        var value: Value
        var ttl: UInt32
        var expires: Duration
    }

    /// At most this many instances, names and addresses each: a LAN full of junk answers costs
    /// a bounded table (the newest wins no place; the room searched for is rarely the 256th).
    public static let maximumEntries = 256

    public init(addressLength: Int, interface: String) {
        self.addressLength = addressLength
        self.interface = interface
    }

    /// The question a browse asks, with the rooms it holds that have more than half their TTL
    /// left as known answers (RFC 6762 §7.1), and the questions for what complete rooms lack.
    public func query(now: Duration) -> DNSMessage {
        let known = pointers.compactMap { instance, pointer -> DNSRecord? in
            let left = pointer.expires - now
            guard left * 2 > .seconds(Int(pointer.ttl)) else { return nil }
            return DNSRecord(name: MulticastDNSService.serviceType, ttl: UInt32(left.components.seconds), data: .ptr(instance))
        }
        return DNSMessage(questions: [DNSQuestion(name: MulticastDNSService.serviceType, type: .ptr)] + missing(), answers: known)
    }

    /// Questions for the SRV and TXT of instances that lack them, and the addresses of SRV targets
    /// that have none of this link's family.
    public func missing() -> [DNSQuestion] {
        var questions: [DNSQuestion] = []
        for instance in Self.ordered(Array(pointers.keys)) {
            if services[instance] == nil { questions.append(DNSQuestion(name: instance, type: .srv)) }
            if texts[instance] == nil { questions.append(DNSQuestion(name: instance, type: .txt)) }
            if let target = services[instance]?.value.target, (addresses[target] ?? [:]).isEmpty,
               !questions.contains(where: { $0.name == target }) {
                questions.append(DNSQuestion(name: target, type: addressLength == 4 ? .a : .aaaa))
            }
        }
        return questions
    }

    /// Learns a response's records (any section); returns what changed for the browse.
    public mutating func learn(_ message: DNSMessage, now: Duration) -> [DiscoveryEvent] {
        guard message.isResponse else { return [] }
        // Only the rooms this message touches are looked at again: a flood costs each packet its
        // own records, not the whole table.
        var touched: Set<DNSName> = []
        for record in message.answers + message.authorities + message.additionals where record.recordClass == 1 {
            let expires = now + .seconds(Int(record.ttl))
            switch record.data {
            case .ptr(let instance) where record.name == MulticastDNSService.serviceType:
                touched.insert(instance)
                if record.ttl == 0 {
                    pointers[instance] = nil
                } else if pointers[instance] != nil || pointers.count < Self.maximumEntries {
                    pointers[instance] = Expiring(value: (), ttl: record.ttl, expires: expires)
                }
            case .srv(_, _, let port, let target):
                touched.insert(record.name)
                if record.ttl == 0 {
                    services[record.name] = nil
                } else if services[record.name] != nil || services.count < Self.maximumEntries {
                    services[record.name] = Expiring(value: (Int(port), target), ttl: record.ttl, expires: expires)
                }
            case .txt(let strings):
                touched.insert(record.name)
                if record.ttl == 0 {
                    texts[record.name] = nil
                } else if texts[record.name] != nil || texts.count < Self.maximumEntries {
                    texts[record.name] = Expiring(value: Self.pairs(strings), ttl: record.ttl, expires: expires)
                }
            case .a(let bytes) where addressLength == 4, .aaaa(let bytes) where addressLength == 16:
                for (instance, service) in services where service.value.target == record.name { touched.insert(instance) }
                if record.ttl == 0 {
                    addresses[record.name]?[bytes] = nil
                } else if addresses[record.name] != nil || addresses.count < Self.maximumEntries {
                    if addresses[record.name, default: [:]].count < 8 || addresses[record.name]?[bytes] != nil {
                        addresses[record.name, default: [:]][bytes] = expires
                    }
                }
            case .ptr, .a, .aaaa, .other:
                continue
            }
        }
        return reconcile(touched)
    }

    /// Drops what has expired by `now`; a room whose PTR expired is removed.
    public mutating func expire(now: Duration) -> [DiscoveryEvent] {
        pointers = pointers.filter { $0.value.expires > now }
        services = services.filter { $0.value.expires > now }
        texts = texts.filter { $0.value.expires > now }
        addresses = addresses.compactMapValues { byAddress in
            let live = byAddress.filter { $0.value > now }
            return live.isEmpty ? nil : live
        }
        return reconcile(nil)
    }

    /// When the next record expires (nil: none held).
    public var nextExpiry: Duration? {
        (pointers.values.map(\.expires) + services.values.map(\.expires) + texts.values.map(\.expires)
            + addresses.values.flatMap(\.values)).min()
    }

    /// Found for rooms complete now and not reported as they are; removed for reported rooms whose
    /// PTR is gone. A room that lost its SRV, TXT or address stays reported until its PTR goes
    /// (Avahi's browser behaves alike).
    private mutating func reconcile(_ touched: Set<DNSName>?) -> [DiscoveryEvent] {
        var events: [DiscoveryEvent] = []
        let gone = touched.map { Array($0).filter { reported[$0] != nil } } ?? Array(reported.keys)
        for instance in Self.ordered(gone) where pointers[instance] == nil {
            reported[instance] = nil
            events.append(.removed(instanceName: Self.label(instance)))
        }
        let candidates = touched.map { Array($0).filter { pointers[$0] != nil } } ?? Array(pointers.keys)
        for instance in Self.ordered(candidates) {
            guard let service = services[instance], let txt = texts[instance],
                  let address = addresses[service.value.target]?.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).first
            else { continue }
            let found = DiscoveredService(instanceName: Self.label(instance), hostName: service.value.target.description,
                                          address: Self.text(address, interface: interface), port: service.value.port, txt: txt.value)
            guard reported[instance] != found else { continue }
            reported[instance] = found
            events.append(.found(found))
        }
        return events
    }

    /// TXT strings as `key=value` pairs: the first of a key counts, a string without `=` is a key
    /// with an empty value, an empty key is skipped (RFC 6763 §6.4).
    static func pairs(_ strings: [[UInt8]]) -> [String: String] {
        var pairs: [String: String] = [:]
        for string in strings {
            let text = String(decoding: string, as: UTF8.self)
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = parts.first, !key.isEmpty, pairs[String(key)] == nil else { continue }
            pairs[String(key)] = parts.count > 1 ? String(parts[1]) : ""
        }
        return pairs
    }

    static func label(_ name: DNSName) -> String { String(decoding: name.labels.first ?? [], as: UTF8.self) }

    /// Names in a fixed order (by their labels' bytes), so the events and questions do not depend
    /// on a dictionary's.
    static func ordered(_ names: [DNSName]) -> [DNSName] {
        names.sorted { $0.labels.lexicographicallyPrecedes($1.labels) { $0.lexicographicallyPrecedes($1) } }
    }

    /// A dotted quad, or an IPv6 address in its short form (RFC 5952), link-local with its scope.
    static func text(_ address: [UInt8], interface: String) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]) }
        // The longest run of two or more zero groups (the first of equals) becomes "::".
        var best: Range<Int>?
        var start = 0
        while start < 8 {
            guard groups[start] == 0 else { start += 1; continue }
            var end = start
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - start >= 2 && end - start > (best?.count ?? 0) { best = start..<end }
            start = end
        }
        func hex(_ slice: ArraySlice<UInt16>) -> String { slice.map { String($0, radix: 16) }.joined(separator: ":") }
        let text = best.map { hex(groups[..<$0.lowerBound]) + "::" + hex(groups[$0.upperBound...]) } ?? hex(groups[...])
        let linkLocal = address[0] == 0xFE && address[1] & 0xC0 == 0x80
        return linkLocal ? "\(text)%\(interface)" : text
    }
}
