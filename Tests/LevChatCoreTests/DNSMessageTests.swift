import LevChatTestSupport
import Testing
@testable import LevChatCore

/// The DNS message codec (issue 19; Docs/PROTOCOL.md, "DNS messages"): the documented bytes, and
/// properties over seeded random messages and packets, since any packet on the LAN may reach it.
struct DNSMessageTests {
    static let service = DNSName(dotted: "_levchat._tcp.local")!

    @Test func aQueryIsTheDocumentedBytes() throws {
        let query = DNSMessage(questions: [DNSQuestion(name: Self.service, type: .ptr)])
        let expected: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
            + [8] + Array("_levchat".utf8) + [4] + Array("_tcp".utf8) + [5] + Array("local".utf8) + [0]
            + [0, 12, 0, 1]
        #expect(try query.encoded() == expected)
        #expect(try DNSMessage(decoding: expected) == query)
    }

    /// RFC 1035 §4.1.4: a name already written is a pointer to where it starts; here the PTR's
    /// owner at byte 12 and its target's suffix after the target's own first label.
    @Test func namesAreCompressedAsRFC1035Says() throws {
        let instance = Self.service.prepending("lc-room")!
        let response = DNSMessage(flags: DNSMessage.responseFlag | DNSMessage.authoritativeFlag, answers: [
            DNSRecord(name: Self.service, ttl: 4500, data: .ptr(instance)),
            DNSRecord(name: instance, ttl: 120, data: .srv(priority: 0, weight: 0, port: 7000, target: DNSName(dotted: "h.local")!),
                      cacheFlush: true),
        ])
        let owner: [UInt8] = [8] + Array("_levchat".utf8) + [4] + Array("_tcp".utf8) + [5] + Array("local".utf8) + [0]
        let ptr: [UInt8] = owner + [0, 12, 0, 1, 0, 0, 0x11, 0x94, 0, 10] + [7] + Array("lc-room".utf8) + [0xC0, 12]
        // The instance name starts at 12 + 21 + 10 = 43; "local" at 12 + 9 + 5 = 26.
        let srv: [UInt8] = [0xC0, 43, 0, 33, 0x80, 1, 0, 0, 0, 120, 0, 10, 0, 0, 0, 0, 0x1B, 0x58] + [1] + Array("h".utf8) + [0xC0, 26]
        let expected: [UInt8] = [0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0] + ptr + srv
        #expect(try response.encoded() == expected)
        #expect(try DNSMessage(decoding: expected) == response)
    }

    @Test func namesCompareIgnoringASCIICase() {
        #expect(DNSName(dotted: "_LevChat._TCP.Local") == Self.service)
        #expect(Set([DNSName(dotted: "A.local")!, DNSName(dotted: "a.LOCAL")!]).count == 1)
        #expect(DNSName(dotted: "é.local") != DNSName(dotted: "É.local"))
    }

    @Test func nameLimitsHold() {
        #expect(DNSName([String(repeating: "a", count: 63)]) != nil)
        #expect(DNSName([String(repeating: "a", count: 64)]) == nil)
        #expect(DNSName(["a", ""]) == nil)
        // 255 bytes on the wire at most: four labels of 62 take 4 × 63 + 1 = 253, a fifth label of 1 byte 2 more.
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 62), count: 4)) != nil)
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 62), count: 4) + ["b"]) != nil)
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 62), count: 4) + ["bc"]) == nil)
    }

    @Test func randomMessagesReadBackAsWritten() throws {
        var random = SplitMix(seed: 19)
        for _ in 0..<2000 {
            let message = Self.randomMessage(&random)
            let bytes = try message.encoded()
            #expect(try DNSMessage(decoding: bytes) == message)
        }
    }

    /// Each of a message's bytes counts: no strict prefix of one reads as a message.
    @Test func everyTruncationIsRefused() throws {
        var random = SplitMix(seed: 6762)
        for _ in 0..<200 {
            let bytes = try Self.randomMessage(&random).encoded()
            for length in 0..<bytes.count {
                #expect(throws: DNSError.self) { try DNSMessage(decoding: bytes[..<length]) }
            }
        }
    }

    /// Whatever reads from damaged or random bytes writes out and reads back the same; nothing else
    /// happens (no trap, no hang: the pointers only go back).
    @Test func damagedAndRandomPacketsNeverCrash() throws {
        var random = SplitMix(seed: 1035)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = try Self.randomMessage(&random).encoded()
                for _ in 0...random.below(4) where !bytes.isEmpty {
                    bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                }
            } else {
                bytes = (0..<random.below(120)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                if bytes.count > 12, round % 4 == 1 { bytes.replaceSubrange(4..<12, with: [0, 1, 0, 1, 0, 0, 0, 0]) }
            }
            guard let message = try? DNSMessage(decoding: bytes) else { continue }
            decoded += 1
            #expect(try DNSMessage(decoding: message.encoded()) == message)
        }
        #expect(decoded > 1000)
    }

    @Test func pointersThatDoNotPointBackAreRefused() throws {
        let header: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        // To itself, forwards, and a label then back to that label.
        #expect(throws: DNSError.badPointer(at: 12)) { try DNSMessage(decoding: header + [0xC0, 12, 0, 1, 0, 1]) }
        #expect(throws: DNSError.badPointer(at: 12)) { try DNSMessage(decoding: header + [0xC0, 16, 0, 1, 0, 1, 1, 0x61, 0]) }
        #expect(throws: DNSError.badPointer(at: 14)) { try DNSMessage(decoding: header + [1, 0x61, 0xC0, 12, 0, 1, 0, 1]) }
        // Two questions, the second's pointer to the first: fine.
        let two: [UInt8] = [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1, 1, 0x62, 0xC0, 12, 0, 1, 0, 1]
        #expect(try DNSMessage(decoding: two).questions.map(\.name.description) == ["a", "b.a"])
    }

    @Test func malformedFieldsAreRefused() throws {
        let header: [UInt8] = [0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        let owner: [UInt8] = [1, 0x61, 0]
        func answer(type: UInt16, _ data: [UInt8], length: Int? = nil) -> [UInt8] {
            let count = length ?? data.count
            return header + owner + [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1, 0, 0, 0, 120, UInt8(count >> 8), UInt8(count & 0xFF)] + data
        }
        #expect(throws: DNSError.badRecordData(type: 1, at: 25)) { try DNSMessage(decoding: answer(type: 1, [10, 0, 0, 1, 9])) }
        #expect(throws: DNSError.badRecordData(type: 28, at: 25)) { try DNSMessage(decoding: answer(type: 28, [UInt8](repeating: 0, count: 4))) }
        // A TXT string longer than the data, a PTR whose name runs past it, an SRV too short.
        #expect(throws: DNSError.badRecordData(type: 16, at: 25)) { try DNSMessage(decoding: answer(type: 16, [5, 0x61, 0x62])) }
        #expect(throws: DNSError.badRecordData(type: 12, at: 25)) { try DNSMessage(decoding: answer(type: 12, [1, 0x61, 0], length: 2) + [0]) }
        #expect(throws: DNSError.badRecordData(type: 33, at: 25)) { try DNSMessage(decoding: answer(type: 33, [0, 0, 0, 0, 0, 1])) }
        #expect(throws: DNSError.truncated(at: 25)) { try DNSMessage(decoding: answer(type: 1, [10, 0], length: 4)) }
        #expect(throws: DNSError.trailingBytes(1)) { try DNSMessage(decoding: answer(type: 1, [10, 0, 0, 1]) + [0]) }
        // Label types 01 and 10 (RFC 6891), and a count that claims more than the bytes hold.
        #expect(throws: DNSError.badLabel(at: 12)) { try DNSMessage(decoding: header + [0x40, 0]) }
        #expect(throws: DNSError.badLabel(at: 12)) { try DNSMessage(decoding: header + [0x80, 0]) }
        #expect(throws: DNSError.truncated(at: 12)) { try DNSMessage(decoding: [0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: DNSError.tooLong(9001)) { try DNSMessage(decoding: [UInt8](repeating: 0, count: 9001)) }
        let unknown = try DNSMessage(decoding: answer(type: 99, [1, 2, 3]))
        #expect(unknown.answers.first?.data == .other(DNSType(rawValue: 99), [1, 2, 3]))
    }

    /// A name of more than 255 bytes can only be made of pointers: each earlier name is short.
    @Test func aNameLongerThan255ThroughPointersIsRefused() {
        var packet: [UInt8] = [0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0]
        let label = [UInt8](repeating: 0x61, count: 60)
        var previous: Int?
        for _ in 0..<5 {
            let start = packet.count
            packet += [60] + label
            if let previous { packet += [0xC0 | UInt8(previous >> 8), UInt8(previous & 0xFF)] } else { packet.append(0) }
            packet += [0, 1, 0, 1]
            previous = start
        }
        // Names of 1 to 5 labels of 60: the fifth is 5 × 61 + 1 = 306 bytes.
        #expect(throws: DNSError.nameTooLong) { try DNSMessage(decoding: packet) }
    }

    @Test func theWriterRefusesWhatItCannotWrite() {
        let name = DNSName(dotted: "a.local")!
        #expect(throws: DNSError.self) { try DNSMessage(answers: [DNSRecord(name: name, ttl: 1, data: .a([1, 2, 3]))]).encoded() }
        #expect(throws: DNSError.self) {
            try DNSMessage(answers: [DNSRecord(name: name, ttl: 1, data: .txt([[UInt8](repeating: 0x61, count: 256)]))]).encoded()
        }
        let big = DNSRecord(name: name, ttl: 1, data: .txt([[UInt8](repeating: 0x61, count: 255)]))
        #expect(throws: DNSError.self) { try DNSMessage(answers: Array(repeating: big, count: 40)).encoded() }
    }

    // MARK: Random messages

    static func randomName(_ random: inout SplitMix) -> DNSName {
        // Mostly names that share suffixes (so compression is exercised), some of random bytes.
        let pool = ["local", "_tcp", "_levchat", "lc-1", "Host", "host", "a b.c", "x"]
        while true {
            let count = random.below(5)
            let labels: [[UInt8]] = (0..<count).map { _ in
                if random.below(4) == 0 {
                    return (0...random.below(63)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                }
                return Array(pool[random.below(pool.count)].utf8)
            }
            if let name = DNSName(labels: labels) { return name }
        }
    }

    static func randomData(_ random: inout SplitMix) -> DNSRecordData {
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        switch random.below(6) {
        case 0: return .a(bytes(4))
        case 1: return .aaaa(bytes(16))
        case 2: return .ptr(randomName(&random))
        case 3: return .srv(priority: UInt16(random.below(65536)), weight: UInt16(random.below(65536)), port: UInt16(random.below(65536)),
                            target: randomName(&random))
        case 4: return .txt((0..<random.below(4)).map { _ in bytes(random.below(40)) })
        default: return .other(DNSType(rawValue: [47, 99, 65280][random.below(3)]), bytes(random.below(30)))
        }
    }

    static func randomMessage(_ random: inout SplitMix) -> DNSMessage {
        func records() -> [DNSRecord] {
            (0..<random.below(4)).map { _ in
                DNSRecord(name: randomName(&random), ttl: UInt32(truncatingIfNeeded: random.next()), data: randomData(&random),
                          cacheFlush: random.below(2) == 0, recordClass: random.below(8) == 0 ? UInt16(random.below(0x8000)) : 1)
            }
        }
        let questions = (0..<random.below(3)).map { _ in
            DNSQuestion(name: randomName(&random), type: DNSType(rawValue: UInt16(random.below(300))), unicastResponse: random.below(2) == 0)
        }
        return DNSMessage(id: UInt16(random.below(65536)), flags: UInt16(random.below(65536)), questions: questions,
                          answers: records(), authorities: records(), additionals: records())
    }
}

extension SplitMix {
    /// A number in 0..<bound.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Packets avahi-daemon 0.8 sent on the simulated LAN (`scripts/simlan`, 2026-12-05) while
/// `avahi-publish -s lc-0123456789abcdef-89abcdef _levchat._tcp 7000 txtvers=2 pv=2-4
/// rid=0123456789abcdef ep=1` ran on one host and `avahi-browse` on another.
enum AvahiPackets {
    static func bytes(_ hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// Its probe: the instance name (ANY) with the SRV and TXT it means to own.
    static let probe = bytes("0000000000010000000200001c6c632d303132333435363738396162636465662d3839616263646566085f6c657663686174045f746370056c6f63616c0000ff0001c00c00210001000000780011000000001b5808646e736361702d61c037c00c0010000100001194002b09747874766572733d320670763d322d34147269643d303132333435363738396162636465660465703d31")
    /// Its announcement: TXT, PTR, SRV, AAAA, A and the service-type PTR.
    static let announcement = bytes("0000840000000006000000001c6c632d303132333435363738396162636465662d3839616263646566085f6c657663686174045f746370056c6f63616c000010800100001194002b09747874766572733d320670763d322d34147269643d303132333435363738396162636465660465703d31c029000c0001000011940002c00cc00c00218001000000780011000000001b5808646e736361702d61c037c093001c8001000000780010fe8000000000000074c7fcfffedc6a6bc093000180010000007800040a4d000b095f7365727669636573075f646e732d7364045f756470c037000c0001000011940002c029")
    /// The browsing host's query, with the PTR it already knows as a known answer.
    static let knownAnswerQuery = bytes("000000000001000100000000085f6c657663686174045f746370056c6f63616c00000c0001c00c000c000100001194001f1c6c632d303132333435363738396162636465662d3839616263646566c00c")
    /// The browsing host's own name: A, AAAA and reverse-lookup PTRs.
    static let hostAnnouncement = bytes("0000840000000004000000000134013901330135013201650165016601660166013801640134013001630165013001300130013001300130013001300130013001300130013001380165016603697036046172706100000c800100000078001008646e736361702d62056c6f63616c00c060000180010000007800040a4d000c023132013002373702313007696e2d61646472c050000c8001000000780002c060c060001c8001000000780010fe80000000000000ec04d8fffee25394")
}

struct AvahiInteroperabilityTests {
    static let instance = DNSName(["lc-0123456789abcdef-89abcdef", "_levchat", "_tcp", "local"])!

    @Test func avahisAnnouncementReadsAsTheRoomItIs() throws {
        let message = try DNSMessage(decoding: AvahiPackets.announcement)
        #expect(message.isResponse && message.flags & DNSMessage.authoritativeFlag != 0)
        let host = DNSName(dotted: "dnscap-a.local")!
        #expect(message.answers.map(\.type) == [.txt, .ptr, .srv, .aaaa, .a, .ptr])
        #expect(message.answers.contains(DNSRecord(name: MulticastDNSService.serviceType, ttl: 4500, data: .ptr(Self.instance))))
        #expect(message.answers.contains(DNSRecord(name: Self.instance, ttl: 120, data: .srv(priority: 0, weight: 0, port: 7000, target: host),
                                                   cacheFlush: true)))
        #expect(message.answers.contains(DNSRecord(name: host, ttl: 120, data: .a([10, 77, 0, 11]), cacheFlush: true)))
        #expect(message.answers.contains(DNSRecord(name: MulticastDNSService.serviceTypes, ttl: 4500, data: .ptr(MulticastDNSService.serviceType))))
        guard case .txt(let strings)? = message.answers.first?.data else { Issue.record("no TXT first"); return }
        var pairs: [String: String] = [:]
        for string in strings {
            let parts = String(decoding: string, as: UTF8.self).split(separator: "=", maxSplits: 1)
            pairs[String(parts[0])] = String(parts[1])
        }
        let room = try #require(RoomAdvertisement(instanceName: "lc-0123456789abcdef-89abcdef", port: 7000, txt: pairs))
        #expect(room.roomID.hex == "0123456789abcdef" && room.epoch == 1)
    }

    @Test func avahisPacketsReadBackThroughOurWriter() throws {
        for packet in [AvahiPackets.probe, AvahiPackets.announcement, AvahiPackets.knownAnswerQuery, AvahiPackets.hostAnnouncement] {
            let message = try DNSMessage(decoding: packet)
            let ours = try message.encoded()
            #expect(try DNSMessage(decoding: ours) == message)
            // Both compress; ours is never longer.
            #expect(ours.count <= packet.count)
        }
        let probe = try DNSMessage(decoding: AvahiPackets.probe)
        #expect(probe.questions == [DNSQuestion(name: Self.instance, type: .any)])
        #expect(probe.authorities.map(\.type) == [.srv, .txt])
        let query = try DNSMessage(decoding: AvahiPackets.knownAnswerQuery)
        #expect(query.questions == [DNSQuestion(name: MulticastDNSService.serviceType, type: .ptr)])
        #expect(query.answers == [DNSRecord(name: MulticastDNSService.serviceType, ttl: 4500, data: .ptr(Self.instance))])
    }
}
