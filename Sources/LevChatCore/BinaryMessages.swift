/// The hot messages (`chat`, `msg`, `ping`) in a compact binary form, so the relay path never
/// touches JSON (Docs/PROTOCOL.md, "Binary messages"). A record's plaintext that starts with `{` is
/// JSON; one that starts with 1, 2 or 3 is one of these. Integers are big endian.
///
/// ```
/// chat  1 ‖ node(16) ‖ sender seq(8) ‖ kind(1) ‖ name length(1) ‖ name(UTF-8)
///         ‖ text length(2) ‖ text(UTF-8) ‖ signature(64)
/// msg   2 ‖ seq(8) ‖ time(8, ms since 1970, signed) ‖ flags(1: bit 0 late) ‖ public key(32)
///         ‖ the chat without its type byte (node … signature)
/// ping  3 ‖ last seq(8)
/// data  4 ‖ bytes of a fetched file (the rest of the record)
/// ```
///
/// The host sequences a chat into a msg by putting its own fields in front of the sender's signed
/// fields, byte for byte as the sender sent them. Every length is checked against what is left; a
/// message cut short, with bytes after its end, a lying length, a kind, sequence or time out of
/// range or text that is not UTF-8 is malformed.
enum BinaryMessages {
    static let chatType: UInt8 = 1
    static let msgType: UInt8 = 2
    static let pingType: UInt8 = 3
    static let dataType: UInt8 = 4

    static func isBinary(_ first: UInt8) -> Bool { first != UInt8(ascii: "{") }

    /// The chat's fields after its type byte; nil when its signature is not 64 bytes of base64
    /// (then the message goes as JSON, where the receiver refuses it in the usual way).
    static func chatBody(_ chat: Chat, into out: inout [UInt8]) -> Bool {
        guard let node = HexBytes.decode(chat.id.node.hex), let sig = Base64.decode(chat.sig), sig.count == 64,
              chat.id.seq >= 0, chat.name.utf8.count <= 255, chat.text.utf8.count <= Int(UInt16.max) else { return false }
        out += node
        append(UInt64(chat.id.seq), to: &out)
        out.append(chat.chatKind.rawValue)
        out.append(UInt8(chat.name.utf8.count))
        out += chat.name.utf8
        append(UInt16(chat.text.utf8.count), to: &out)
        out += chat.text.utf8
        out += sig
        return true
    }

    static func encode(_ chat: Chat) -> [UInt8]? {
        var out: [UInt8] = [chatType]
        out.reserveCapacity(100 + chat.text.utf8.count)
        return chatBody(chat, into: &out) ? out : nil
    }

    static func encode(_ record: ChatRecord) -> [UInt8]? {
        guard record.seq >= 0, let key = Base64.decode(record.key), key.count == 32 else { return nil }
        var out: [UInt8] = [msgType]
        out.reserveCapacity(140 + record.text.utf8.count + record.from.utf8.count)
        append(UInt64(record.seq), to: &out)
        append(UInt64(bitPattern: record.time), to: &out)
        out.append(record.late == true ? 1 : 0)
        out += key
        let chat = Chat(id: record.id, name: record.from, text: record.text, kind: record.kind, sig: record.sig)
        return chatBody(chat, into: &out) ? out : nil
    }

    static func encode(_ ping: Ping) -> [UInt8] {
        var out: [UInt8] = [pingType]
        append(UInt64(max(ping.lastSeq, 0)), to: &out)
        return out
    }

    /// Decodes where the bytes lie: fields are read from the buffer into the values they become,
    /// with no array per field (a member decodes every line it receives).
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(MessageError) -> WireMessage {
        var reader = ByteReader(bytes)
        let type = try reader.byte()
        let message: WireMessage
        switch type {
        case chatType:
            message = .chat(try chat(&reader))
        case msgType:
            let seq = try reader.count()
            let time = Int64(bitPattern: try reader.uint64())
            let flags = try reader.byte()
            guard flags & ~1 == 0 else { throw .malformed("unknown msg flags \(flags)") }
            let key = Base64.encode(try reader.bytes(32))
            let chat = try chat(&reader)
            message = .msg(ChatRecord(seq: seq, id: chat.id, from: chat.name, text: chat.text, time: time, late: flags & 1 == 1 ? true : nil,
                                      kind: chat.kind, key: key, sig: chat.sig))
        case pingType:
            message = .ping(Ping(lastSeq: try reader.count()))
        case dataType:
            return .data(Array(bytes.dropFirst()))
        default:
            throw .malformed("unknown binary message type \(type)")
        }
        guard reader.isAtEnd else { throw .malformed("\(reader.remaining) bytes after the end of a \(message.typeName)") }
        return message
    }

    private static func chat(_ reader: inout ByteReader) throws(MessageError) -> Chat {
        let node = NodeID(trustedHex: try reader.bytes(16).hexString)
        let seq = try reader.count()
        let rawKind = try reader.byte()
        guard let kind = ChatKind(rawValue: rawKind) else { throw .malformed("unknown chat kind \(rawKind)") }
        let name = try reader.text(length: Int(try reader.byte()))
        let text = try reader.text(length: Int(try reader.uint16()))
        let sig = Base64.encode(try reader.bytes(64))
        return Chat(id: MessageID(node: node, seq: seq), name: name, text: text, kind: kind == .text ? nil : kind, sig: sig)
    }

    private static func append(_ value: UInt64, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func append(_ value: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(value >> 8))
        out.append(UInt8(value & 0xFF))
    }
}

/// Reads a binary message front to back, where it lies; every read checks what is left. Used only
/// inside the `withUnsafeBytes` of the bytes it reads.
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }
    var remaining: Int { bytes.count - offset }

    /// The next `n` bytes, indexed from 0.
    mutating func bytes(_ n: Int) throws(MessageError) -> UnsafeRawBufferPointer {
        guard remaining >= n else { throw .malformed("cut short: \(n) bytes wanted, \(remaining) left") }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
    }

    mutating func byte() throws(MessageError) -> UInt8 {
        guard remaining >= 1 else { throw .malformed("cut short: 1 byte wanted, 0 left") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16() throws(MessageError) -> UInt16 {
        let b = try bytes(2)
        return UInt16(b[0]) << 8 | UInt16(b[1])
    }

    mutating func uint64() throws(MessageError) -> UInt64 {
        UInt64(bigEndian: try bytes(8).loadUnaligned(as: UInt64.self))
    }

    /// A sequence number or count: an unsigned 64-bit value that must fit an Int.
    mutating func count() throws(MessageError) -> Int {
        let value = try uint64()
        guard value <= UInt64(Int.max) else { throw .malformed("number \(value) out of range") }
        return Int(value)
    }

    mutating func text(length: Int) throws(MessageError) -> String {
        let raw = try bytes(length)
        guard let text = raw.withMemoryRebound(to: UInt8.self, { String(validating: $0, as: UTF8.self) }) else {
            throw .malformed("text that is not UTF-8")
        }
        return text
    }
}
