import Testing
@testable import LevChatCore

/// The embedded responder's rules (issue 19; Docs/PROTOCOL.md, "Discovery without avahi-daemon"),
/// each on its own: what it publishes, what it answers, what it takes for a conflict.
struct MulticastDNSTests {
    static let room = RoomAdvertisement(room: RoomID(hex: "0123456789abcdef")!, host: node(1), epoch: 3, port: 7000)
    static let service = MulticastDNSService(room, hostLabel: "levchat-1")!
    static let addresses: [[UInt8]] = [[10, 77, 0, 11], [0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]]

    static func query(_ name: DNSName, _ type: DNSType, known: [DNSRecord] = []) -> DNSMessage {
        DNSMessage(questions: [DNSQuestion(name: name, type: type)], answers: known)
    }

    @Test func itPublishesWhatAvahiPublishesForARoom() {
        let records = Self.service.records(addresses: Self.addresses)
        let instance = MulticastDNSService.serviceType.prepending(Self.room.instanceName)!
        let host = DNSName(dotted: "levchat-1.local")!
        #expect(records == [
            DNSRecord(name: MulticastDNSService.serviceType, ttl: 4500, data: .ptr(instance)),
            DNSRecord(name: MulticastDNSService.serviceTypes, ttl: 4500, data: .ptr(MulticastDNSService.serviceType)),
            DNSRecord(name: instance, ttl: 120, data: .srv(priority: 0, weight: 0, port: 7000, target: host), cacheFlush: true),
            DNSRecord(name: instance, ttl: 4500, data: .txt(Self.room.txtRecord.map { Array($0.utf8) }), cacheFlush: true),
            DNSRecord(name: host, ttl: 120, data: .a(Self.addresses[0]), cacheFlush: true),
            DNSRecord(name: host, ttl: 120, data: .aaaa(Self.addresses[1]), cacheFlush: true),
        ])
        let goodbye = Self.service.announcement(addresses: Self.addresses, goodbye: true)
        #expect(goodbye.isResponse && goodbye.answers.count == 6 && goodbye.answers.allSatisfy { $0.ttl == 0 })
        #expect(Self.service.announcement(addresses: Self.addresses).answers == records)
    }

    @Test func aProbeAsksForBothNamesWithTheRecordsItWantsToOwn() {
        let probe = Self.service.probe(addresses: Self.addresses)
        #expect(!probe.isResponse)
        #expect(probe.questions.map(\.name) == [Self.service.instance, Self.service.host])
        #expect(probe.questions.allSatisfy { $0.type == .any && $0.unicastResponse })
        #expect(probe.authorities.map(\.type) == [.srv, .txt, .a, .aaaa])
    }

    @Test func aBrowseGetsThePointerWithEverythingToConnect() throws {
        let response = try #require(Self.service.answer(Self.query(MulticastDNSService.serviceType, .ptr), addresses: Self.addresses))
        #expect(response.isResponse && response.id == 0 && response.questions.isEmpty)
        #expect(response.answers == [Self.service.pointer()])
        #expect(response.additionals.map(\.type) == [.srv, .txt, .a, .aaaa])
        // Service-type enumeration (RFC 6763 §9), an SRV (with the addresses), a host's address, ANY.
        let types = try #require(Self.service.answer(Self.query(MulticastDNSService.serviceTypes, .ptr), addresses: Self.addresses))
        #expect(types.answers == [Self.service.serviceTypePointer()])
        let srv = try #require(Self.service.answer(Self.query(Self.service.instance, .srv), addresses: Self.addresses))
        #expect(srv.answers == [Self.service.service()] && srv.additionals.map(\.type) == [.a, .aaaa])
        let a = try #require(Self.service.answer(Self.query(Self.service.host, .a), addresses: Self.addresses))
        #expect(a.answers.map(\.type) == [.a] && a.additionals.isEmpty)
        let any = try #require(Self.service.answer(Self.query(Self.service.instance, .any), addresses: Self.addresses))
        #expect(any.answers.map(\.type) == [.srv, .txt])
        // Names compare without case.
        #expect(Self.service.answer(Self.query(DNSName(dotted: "_LEVCHAT._tcp.LOCAL")!, .ptr), addresses: Self.addresses) != nil)
    }

    @Test func whatIsNotOursOrAlreadyKnownIsNotAnswered() {
        #expect(Self.service.answer(Self.query(DNSName(dotted: "_http._tcp.local")!, .ptr), addresses: Self.addresses) == nil)
        #expect(Self.service.answer(Self.query(Self.service.instance, .a), addresses: Self.addresses) == nil)
        // A response, another opcode, a response code: never answered.
        var response = Self.query(MulticastDNSService.serviceType, .ptr)
        response.flags = DNSMessage.responseFlag
        #expect(Self.service.answer(response, addresses: Self.addresses) == nil)
        var update = Self.query(MulticastDNSService.serviceType, .ptr)
        update.flags = 5 << 11
        #expect(Self.service.answer(update, addresses: Self.addresses) == nil)
        // Known-answer suppression (RFC 6762 §7.1): at least half the TTL left, or not.
        var known = Self.service.pointer()
        known.ttl = 2250
        #expect(Self.service.answer(Self.query(MulticastDNSService.serviceType, .ptr, known: [known]), addresses: Self.addresses) == nil)
        known.ttl = 2249
        #expect(Self.service.answer(Self.query(MulticastDNSService.serviceType, .ptr, known: [known]), addresses: Self.addresses) != nil)
    }

    @Test func aLegacyQueryGetsItsIdQuestionsAndShortLives() throws {
        var query = Self.query(MulticastDNSService.serviceType, .ptr)
        query.id = 0x1234
        let response = try #require(Self.service.answer(query, addresses: Self.addresses, legacy: true))
        #expect(response.id == 0x1234 && response.questions == query.questions)
        #expect((response.answers + response.additionals).allSatisfy { $0.ttl <= 10 && !$0.cacheFlush })
    }

    @Test func onlyOtherDataUnderOurNamesIsAConflict() {
        let own = Self.service.announcement(addresses: Self.addresses)
        #expect(!Self.service.conflicts(with: own, addresses: Self.addresses, probing: true))
        func response(_ record: DNSRecord) -> DNSMessage { DNSMessage(flags: DNSMessage.responseFlag, answers: [record]) }
        var otherPort = Self.service.service()
        otherPort.data = .srv(priority: 0, weight: 0, port: 7001, target: Self.service.host)
        #expect(Self.service.conflicts(with: response(otherPort), addresses: Self.addresses, probing: false))
        var otherText = Self.service.text()
        otherText.data = .txt([Array("txtvers=2".utf8)])
        #expect(Self.service.conflicts(with: response(otherText), addresses: Self.addresses, probing: false))
        let otherAddress = DNSRecord(name: Self.service.host, ttl: 120, data: .a([10, 77, 0, 12]), cacheFlush: true)
        #expect(Self.service.conflicts(with: response(otherAddress), addresses: Self.addresses, probing: false))
        // Not conflicts: a goodbye, another host's records, a shared PTR to another instance.
        var goodbye = otherPort
        goodbye.ttl = 0
        #expect(!Self.service.conflicts(with: response(goodbye), addresses: Self.addresses, probing: false))
        let elsewhere = DNSRecord(name: DNSName(dotted: "other.local")!, ttl: 120, data: .a([10, 77, 0, 12]))
        #expect(!Self.service.conflicts(with: response(elsewhere), addresses: Self.addresses, probing: false))
        let shared = DNSRecord(name: MulticastDNSService.serviceType, ttl: 4500, data: .ptr(DNSName(dotted: "x._levchat._tcp.local")!))
        #expect(!Self.service.conflicts(with: response(shared), addresses: Self.addresses, probing: false))
    }

    /// RFC 6762 §8.2: two probes for one name at once; the greater records win, and only a probe
    /// that is still probing gives way.
    @Test func simultaneousProbesAreSettledByTheirRecords() {
        func probe(port: UInt16) -> DNSMessage {
            var probe = Self.service.probe(addresses: Self.addresses)
            probe.authorities[0].data = .srv(priority: 0, weight: 0, port: port, target: Self.service.host)
            return probe
        }
        #expect(Self.service.conflicts(with: probe(port: 7001), addresses: Self.addresses, probing: true))
        #expect(!Self.service.conflicts(with: probe(port: 6999), addresses: Self.addresses, probing: true))
        #expect(!Self.service.conflicts(with: probe(port: 7001), addresses: Self.addresses, probing: false))
        // Our own probe coming back is a tie, not a conflict.
        #expect(!Self.service.conflicts(with: Self.service.probe(addresses: Self.addresses), addresses: Self.addresses, probing: true))
    }

    @Test func aConflictRenamesBothNames() {
        var service = Self.service
        var renamed = service.rename()
        #expect(renamed)
        #expect(service.instanceLabel == "\(Self.room.instanceName) (2)")
        #expect(service.host == DNSName(dotted: "levchat-1-2.local"))
        renamed = service.rename()
        #expect(renamed)
        #expect(service.instanceLabel == "\(Self.room.instanceName) (3)")
        var long = MulticastDNSService(instanceLabel: String(repeating: "a", count: 63), hostLabel: "h", port: 1, txt: [])!
        renamed = long.rename()
        #expect(!renamed)
        #expect(MulticastDNSService(instanceLabel: String(repeating: "a", count: 64), hostLabel: "h", port: 1, txt: []) == nil)
    }
}
