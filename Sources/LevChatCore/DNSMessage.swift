/// DNS messages as multicast DNS carries them (RFC 1035 §4, RFC 6762 §18): the codec under the
/// embedded mDNS responder and browser of issue 19 (Docs/PROTOCOL.md, "DNS messages").
///
/// A packet from the LAN is hostile input, so decoding is bounded like the other decoders: at most
/// `DNSMessage.maximumLength` bytes, names of at most 255 bytes in labels of at most 63, compression
/// pointers only backwards (so no loop and at most one jump per byte before them), every record's
/// data read to exactly its stated length, and no count trusted before the bytes are there.
/// Anything else is one `DNSError`, never a crash. Written here because no package we can depend on
/// parses DNS (Docs/ARCHITECTURE.md, "Hand-written parts").
public struct DNSMessage: Hashable, Sendable {
    /// RFC 6762 §17: a multicast DNS packet is at most 9,000 bytes (a jumbo frame's payload).
    public static let maximumLength = 9000
    /// The mDNS port and groups (RFC 6762 §3).
    public static let port = 5353
    public static let ipv4Group = "224.0.0.251"
    public static let ipv6Group = "ff02::fb"

    public var id: UInt16
    /// QR, opcode, AA, TC, RD, RA, Z, AD, CD and RCODE as they are on the wire.
    public var flags: UInt16
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authorities: [DNSRecord]
    public var additionals: [DNSRecord]

    /// QR: a response (else a query).
    public static let responseFlag: UInt16 = 0x8000
    /// AA: mDNS responses set it (RFC 6762 §18.4).
    public static let authoritativeFlag: UInt16 = 0x0400

    public init(id: UInt16 = 0, flags: UInt16 = 0, questions: [DNSQuestion] = [], answers: [DNSRecord] = [],
                authorities: [DNSRecord] = [], additionals: [DNSRecord] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    public var isResponse: Bool { flags & Self.responseFlag != 0 }
    /// The opcode (RFC 6762 §18.3: anything but 0, a standard query, is ignored).
    public var opcode: Int { Int(flags >> 11) & 0xF }
    /// The response code (RFC 6762 §18.11: anything but 0 is ignored).
    public var responseCode: Int { Int(flags & 0xF) }

    /// The wire form, names compressed (RFC 1035 §4.1.4). Throws when it would be longer than
    /// `maximumLength` or a section has more than 65,535 entries.
    public func encoded() throws(DNSError) -> [UInt8] {
        var writer = DNSWriter()
        writer.u16(id)
        writer.u16(flags)
        for count in [questions.count, answers.count, authorities.count, additionals.count] {
            guard count <= Int(UInt16.max) else { throw .tooManyEntries(count) }
            writer.u16(UInt16(count))
        }
        for question in questions {
            writer.name(question.name)
            writer.u16(question.type.rawValue)
            writer.u16(question.recordClass | (question.unicastResponse ? 0x8000 : 0))
        }
        for record in answers + authorities + additionals { try writer.record(record) }
        guard writer.bytes.count <= Self.maximumLength else { throw .tooLong(writer.bytes.count) }
        return writer.bytes
    }

    /// Reads one packet, which must hold exactly the message (no bytes after its last record).
    public init(decoding packet: some Collection<UInt8>) throws(DNSError) {
        guard packet.count <= Self.maximumLength else { throw .tooLong(packet.count) }
        var reader = DNSReader(Array(packet))
        id = try reader.u16()
        flags = try reader.u16()
        let questionCount = Int(try reader.u16())
        let answerCount = Int(try reader.u16())
        let authorityCount = Int(try reader.u16())
        let additionalCount = Int(try reader.u16())
        // No `reserveCapacity(count)`: a count is only a claim until the bytes are there.
        questions = []
        for _ in 0..<questionCount {
            let name = try reader.name()
            let type = DNSType(rawValue: try reader.u16())
            let rawClass = try reader.u16()
            questions.append(DNSQuestion(name: name, type: type, unicastResponse: rawClass & 0x8000 != 0, recordClass: rawClass & 0x7FFF))
        }
        answers = try reader.records(answerCount)
        authorities = try reader.records(authorityCount)
        additionals = try reader.records(additionalCount)
        guard reader.position == reader.bytes.count else { throw .trailingBytes(reader.bytes.count - reader.position) }
    }
}

/// Why a packet is not a DNS message we read.
public enum DNSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The packet ended inside a field (where it ended).
    case truncated(at: Int)
    case tooLong(Int)
    case tooManyEntries(Int)
    /// A label of more than 63 bytes, or a label type other than a length or a pointer.
    case badLabel(at: Int)
    /// A name of more than 255 bytes on the wire.
    case nameTooLong
    /// A compression pointer that does not point backwards.
    case badPointer(at: Int)
    /// A record's data is not what its type says (its type and where it starts).
    case badRecordData(type: UInt16, at: Int)
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .truncated(let at): "the packet ends inside a field at byte \(at)"
        case .tooLong(let length): "\(length) bytes is more than a DNS message may have here (\(DNSMessage.maximumLength))"
        case .tooManyEntries(let count): "\(count) entries do not fit in a section"
        case .badLabel(let at): "a malformed label at byte \(at)"
        case .nameTooLong: "a name longer than 255 bytes"
        case .badPointer(let at): "a compression pointer at byte \(at) that does not point back"
        case .badRecordData(let type, let at): "the data of a type \(type) record at byte \(at) is malformed"
        case .trailingBytes(let count): "\(count) bytes after the last record"
        }
    }
}

/// A domain name as labels of bytes. Equal and hashed ignoring ASCII case (RFC 1035 §2.3.3).
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public static let maximumLabelLength = 63
    public static let maximumWireLength = 255

    public let labels: [[UInt8]]

    /// Nil when a label is empty or longer than 63 bytes, or the name longer than 255 on the wire.
    public init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= Self.maximumLabelLength }),
              labels.reduce(1, { $0 + 1 + $1.count }) <= Self.maximumWireLength else { return nil }
        self.labels = labels
    }

    /// Labels given as strings (an instance name may hold dots and spaces: it is one label).
    public init?(_ labels: [String]) { self.init(labels: labels.map { Array($0.utf8) }) }

    /// A name of labels without dots in them, written with dots: `_levchat._tcp.local`.
    public init?(dotted: String) {
        self.init(dotted.split(separator: ".", omittingEmptySubsequences: false).map(String.init))
    }

    /// This name with `label` in front (nil if it would be too long).
    public func prepending(_ label: String) -> DNSName? { DNSName(labels: [Array(label.utf8)] + labels) }

    public var description: String {
        labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
    }

    /// The labels in lower case (ASCII only), as names are compared.
    var folded: [[UInt8]] { labels.map { $0.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 } } }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool { lhs.folded == rhs.folded }
    public func hash(into hasher: inout Hasher) { hasher.combine(folded) }
}

/// A record type (RFC 1035 §3.2.2 and the ones mDNS uses).
public struct DNSType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSType(rawValue: 1)
    public static let ptr = DNSType(rawValue: 12)
    public static let txt = DNSType(rawValue: 16)
    public static let aaaa = DNSType(rawValue: 28)
    public static let srv = DNSType(rawValue: 33)
    /// In a question: every record of the name.
    public static let any = DNSType(rawValue: 255)

    public var description: String {
        switch rawValue {
        case 1: "A"
        case 12: "PTR"
        case 16: "TXT"
        case 28: "AAAA"
        case 33: "SRV"
        case 47: "NSEC"
        case 255: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

public struct DNSQuestion: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSType
    /// The QU bit (RFC 6762 §5.4): the asker would like a unicast answer.
    public var unicastResponse: Bool
    public var recordClass: UInt16

    /// Class IN (1).
    public init(name: DNSName, type: DNSType, unicastResponse: Bool = false, recordClass: UInt16 = 1) {
        self.name = name
        self.type = type
        self.unicastResponse = unicastResponse
        self.recordClass = recordClass
    }
}

public struct DNSRecord: Hashable, Sendable {
    public var name: DNSName
    /// The cache-flush bit (RFC 6762 §10.2): this record replaces what caches hold of its name
    /// and type. Set for unique records (SRV, TXT, addresses), never for shared ones (PTR).
    public var cacheFlush: Bool
    public var recordClass: UInt16
    /// Seconds; 0 is a goodbye (RFC 6762 §10.1).
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, ttl: UInt32, data: DNSRecordData, cacheFlush: Bool = false, recordClass: UInt16 = 1) {
        self.name = name
        self.cacheFlush = cacheFlush
        self.recordClass = recordClass
        self.ttl = ttl
        self.data = data
    }

    public var type: DNSType { data.type }
}

public enum DNSRecordData: Hashable, Sendable {
    /// 4 bytes.
    case a([UInt8])
    /// 16 bytes.
    case aaaa([UInt8])
    case ptr(DNSName)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    /// The character strings, each at most 255 bytes (RFC 6763 §6: `key=value` pairs).
    case txt([[UInt8]])
    /// Any other type, its data as it came.
    case other(DNSType, [UInt8])

    public var type: DNSType {
        switch self {
        case .a: .a
        case .aaaa: .aaaa
        case .ptr: .ptr
        case .srv: .srv
        case .txt: .txt
        case .other(let type, _): type
        }
    }
}

// MARK: The wire

private struct DNSReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws(DNSError) -> UInt8 {
        guard position < bytes.count else { throw .truncated(at: position) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16() throws(DNSError) -> UInt16 {
        guard position + 2 <= bytes.count else { throw .truncated(at: position) }
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    mutating func u32() throws(DNSError) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func take(_ count: Int) throws(DNSError) -> [UInt8] {
        guard count >= 0, position + count <= bytes.count else { throw .truncated(at: position) }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    /// A name at the reading position, following compression pointers. A pointer must point before
    /// the label it stands in for, so every jump goes backwards and the walk ends.
    mutating func name() throws(DNSError) -> DNSName {
        var labels: [[UInt8]] = []
        var wireLength = 1
        var cursor = position
        var resumeAt: Int?
        // The lowest offset this name has read from so far: a pointer must go below it.
        var floor = position
        while true {
            guard cursor < bytes.count else { throw .truncated(at: cursor) }
            let length = bytes[cursor]
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    position = resumeAt ?? cursor + 1
                    // Never nil: every label was checked on the way.
                    guard let name = DNSName(labels: labels) else { throw .nameTooLong }
                    return name
                }
                let start = cursor + 1
                guard start + Int(length) <= bytes.count else { throw .truncated(at: cursor) }
                wireLength += 1 + Int(length)
                guard wireLength <= DNSName.maximumWireLength else { throw .nameTooLong }
                labels.append(Array(bytes[start..<start + Int(length)]))
                cursor = start + Int(length)
            case 0xC0:
                guard cursor + 1 < bytes.count else { throw .truncated(at: cursor) }
                let target = Int(length & 0x3F) << 8 | Int(bytes[cursor + 1])
                guard target < floor else { throw .badPointer(at: cursor) }
                if resumeAt == nil { resumeAt = cursor + 2 }
                floor = target
                cursor = target
            default:
                // 0x40 and 0x80: extended and reserved label types (RFC 6891 §5).
                throw .badLabel(at: cursor)
            }
        }
    }

    mutating func records(_ count: Int) throws(DNSError) -> [DNSRecord] {
        var records: [DNSRecord] = []
        for _ in 0..<count { records.append(try record()) }
        return records
    }

    mutating func record() throws(DNSError) -> DNSRecord {
        let owner = try name()
        let type = DNSType(rawValue: try u16())
        let rawClass = try u16()
        let ttl = try u32()
        let length = Int(try u16())
        let start = position
        guard start + length <= bytes.count else { throw .truncated(at: start) }
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw .badRecordData(type: type.rawValue, at: start) }
            data = .a(try take(4))
        case .aaaa:
            guard length == 16 else { throw .badRecordData(type: type.rawValue, at: start) }
            data = .aaaa(try take(16))
        case .ptr:
            data = .ptr(try name())
        case .srv:
            guard length >= 7 else { throw .badRecordData(type: type.rawValue, at: start) }
            data = .srv(priority: try u16(), weight: try u16(), port: try u16(), target: try name())
        case .txt:
            var strings: [[UInt8]] = []
            while position < start + length {
                let count = Int(try u8())
                guard position + count <= start + length else { throw .badRecordData(type: type.rawValue, at: start) }
                strings.append(try take(count))
            }
            data = .txt(strings)
        default:
            data = .other(type, try take(length))
        }
        // A name inside the data may not run past it, nor stop short of it.
        guard position == start + length else { throw .badRecordData(type: type.rawValue, at: start) }
        return DNSRecord(name: owner, ttl: ttl, data: data, cacheFlush: rawClass & 0x8000 != 0, recordClass: rawClass & 0x7FFF)
    }
}

private struct DNSWriter {
    var bytes: [UInt8] = []
    /// Where each name suffix already written starts (folded labels), for compression.
    var suffixes: [[[UInt8]]: Int] = [:]

    mutating func u16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
    mutating func u32(_ value: UInt32) { u16(UInt16(value >> 16)); u16(UInt16(value & 0xFFFF)) }

    mutating func name(_ name: DNSName) {
        let folded = name.folded
        for index in name.labels.indices {
            let suffix = Array(folded[index...])
            if let offset = suffixes[suffix] {
                u16(0xC000 | UInt16(offset))
                return
            }
            // Pointers have 14 bits: later suffixes are written out.
            if bytes.count < 0x4000 { suffixes[suffix] = bytes.count }
            bytes.append(UInt8(name.labels[index].count))
            bytes += name.labels[index]
        }
        bytes.append(0)
    }

    mutating func record(_ record: DNSRecord) throws(DNSError) {
        name(record.name)
        u16(record.type.rawValue)
        u16(record.recordClass | (record.cacheFlush ? 0x8000 : 0))
        u32(record.ttl)
        let lengthAt = bytes.count
        u16(0)
        switch record.data {
        case .a(let address):
            guard address.count == 4 else { throw .badRecordData(type: DNSType.a.rawValue, at: lengthAt) }
            bytes += address
        case .aaaa(let address):
            guard address.count == 16 else { throw .badRecordData(type: DNSType.aaaa.rawValue, at: lengthAt) }
            bytes += address
        case .ptr(let target):
            name(target)
        case .srv(let priority, let weight, let port, let target):
            u16(priority)
            u16(weight)
            u16(port)
            name(target)
        case .txt(let strings):
            for string in strings {
                guard string.count <= 255 else { throw .badRecordData(type: DNSType.txt.rawValue, at: lengthAt) }
                bytes.append(UInt8(string.count))
                bytes += string
            }
        case .other(_, let data):
            bytes += data
        }
        let length = bytes.count - lengthAt - 2
        guard length <= Int(UInt16.max) else { throw .tooLong(bytes.count) }
        bytes[lengthAt] = UInt8(length >> 8)
        bytes[lengthAt + 1] = UInt8(length & 0xFF)
    }
}
