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

/// The browser's cache with no daemon, one rule a test (issue 19).
struct MulticastDNSBrowserCacheTests {
    static let instance = DNSName(["lc-0123456789abcdef-89abcdef", "_levchat", "_tcp", "local"])!
    static let host = DNSName(dotted: "h.local")!
    static let txt: [[UInt8]] = ["txtvers=2", "pv=5-5", "rid=0123456789abcdef", "ep=1"].map { Array($0.utf8) }

    static func response(_ records: [DNSRecord]) -> DNSMessage { DNSMessage(flags: DNSMessage.responseFlag, answers: records) }
    static func ptr(ttl: UInt32 = 4500) -> DNSRecord { DNSRecord(name: MulticastDNSService.serviceType, ttl: ttl, data: .ptr(instance)) }
    static func srv(port: UInt16 = 7000, ttl: UInt32 = 120) -> DNSRecord {
        DNSRecord(name: instance, ttl: ttl, data: .srv(priority: 0, weight: 0, port: port, target: host), cacheFlush: true)
    }
    static func text(_ strings: [[UInt8]] = txt) -> DNSRecord { DNSRecord(name: instance, ttl: 4500, data: .txt(strings), cacheFlush: true) }
    static func a(_ bytes: [UInt8] = [10, 77, 0, 11], ttl: UInt32 = 120) -> DNSRecord { DNSRecord(name: host, ttl: ttl, data: .a(bytes), cacheFlush: true) }

    @Test func avahisAnnouncementIsARoomOnEachFamily() throws {
        let announcement = try DNSMessage(decoding: AvahiPackets.announcement)
        var ipv4 = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        let found4 = ipv4.learn(announcement, now: .zero)
        let pairs = ["txtvers": "2", "pv": "2-4", "rid": "0123456789abcdef", "ep": "1"]
        #expect(found4 == [.found(DiscoveredService(instanceName: "lc-0123456789abcdef-89abcdef", hostName: "dnscap-a.local",
                                                    address: "10.77.0.11", port: 7000, txt: pairs))])
        var ipv6 = MulticastDNSBrowserCache(addressLength: 16, interface: "lan0")
        let found6 = ipv6.learn(announcement, now: .zero)
        #expect(found6 == [.found(DiscoveredService(instanceName: "lc-0123456789abcdef-89abcdef", hostName: "dnscap-a.local",
                                                    address: "fe80::74c7:fcff:fedc:6a6b%lan0", port: 7000, txt: pairs))])
        // The same again is nothing new; a query is not learnt from.
        #expect(ipv4.learn(announcement, now: .seconds(1)).isEmpty)
        #expect(ipv4.learn(try DNSMessage(decoding: AvahiPackets.knownAnswerQuery), now: .seconds(1)).isEmpty)
    }

    @Test func aRoomIsFoundOnlyWhenWholeAndItsGapsAreAskedFor() {
        var cache = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        #expect(cache.learn(Self.response([Self.ptr()]), now: .zero).isEmpty)
        #expect(cache.missing() == [DNSQuestion(name: Self.instance, type: .srv), DNSQuestion(name: Self.instance, type: .txt)])
        #expect(cache.learn(Self.response([Self.srv(), Self.text()]), now: .zero).isEmpty)
        #expect(cache.missing() == [DNSQuestion(name: Self.host, type: .a)])
        // An AAAA is not an address on an IPv4 link.
        #expect(cache.learn(Self.response([DNSRecord(name: Self.host, ttl: 120, data: .aaaa([UInt8](repeating: 1, count: 16)))]), now: .zero).isEmpty)
        let events = cache.learn(Self.response([Self.a()]), now: .zero)
        guard case .found(let service)? = events.first, events.count == 1 else { Issue.record("\(events)"); return }
        #expect(service.address == "10.77.0.11" && service.port == 7000 && service.txt["ep"] == "1")
        #expect(cache.missing().isEmpty)
        // The browse's question then carries the room as a known answer.
        #expect(cache.query(now: .seconds(1)).answers.map(\.data) == [.ptr(Self.instance)])
        #expect(cache.query(now: .seconds(1)).questions == [DNSQuestion(name: MulticastDNSService.serviceType, type: .ptr)])
    }

    @Test func aChangedRoomIsFoundAgain() {
        var cache = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        #expect(cache.learn(Self.response([Self.ptr(), Self.srv(), Self.text(), Self.a()]), now: .zero).count == 1)
        let moved = cache.learn(Self.response([Self.srv(port: 7001)]), now: .seconds(1))
        guard case .found(let service)? = moved.first, moved.count == 1 else { Issue.record("\(moved)"); return }
        #expect(service.port == 7001)
    }

    @Test func aGoodbyeOrAnExpiredPointerRemovesTheRoom() {
        var cache = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        _ = cache.learn(Self.response([Self.ptr(), Self.srv(), Self.text(), Self.a()]), now: .zero)
        #expect(cache.learn(Self.response([Self.ptr(ttl: 0)]), now: .seconds(1)) == [.removed(instanceName: "lc-0123456789abcdef-89abcdef")])

        var expiring = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        _ = expiring.learn(Self.response([Self.ptr(ttl: 100), Self.srv(ttl: 4500), Self.text(), Self.a(ttl: 4500)]), now: .zero)
        #expect(expiring.nextExpiry == .seconds(100))
        #expect(expiring.expire(now: .seconds(99)).isEmpty)
        #expect(expiring.expire(now: .seconds(100)) == [.removed(instanceName: "lc-0123456789abcdef-89abcdef")])
        // The SRV, TXT or address going (goodbye or expiry) leaves a reported room as it is.
        var lasting = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        _ = lasting.learn(Self.response([Self.ptr(), Self.srv(), Self.text(), Self.a()]), now: .zero)
        #expect(lasting.learn(Self.response([Self.a(ttl: 0)]), now: .seconds(1)).isEmpty)
        #expect(lasting.expire(now: .seconds(200)).isEmpty)
        #expect(lasting.missing() == [DNSQuestion(name: Self.instance, type: .srv)])
    }

    @Test func knownAnswersAreTheRoomsWithMoreThanHalfTheirTTLLeft() {
        var cache = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        _ = cache.learn(Self.response([Self.ptr(ttl: 100)]), now: .zero)
        #expect(cache.query(now: .seconds(49)).answers.count == 1)
        #expect(cache.query(now: .seconds(49)).answers.first?.ttl == 51)
        #expect(cache.query(now: .seconds(50)).answers.isEmpty)
    }

    @Test func aFloodOfJunkHoldsABoundedTable() {
        var cache = MulticastDNSBrowserCache(addressLength: 4, interface: "lan0")
        for n in 0..<2000 {
            let junk = MulticastDNSService.serviceType.prepending("junk-\(n)")!
            _ = cache.learn(Self.response([DNSRecord(name: MulticastDNSService.serviceType, ttl: 4500, data: .ptr(junk)),
                                           DNSRecord(name: DNSName(dotted: "h\(n).local")!, ttl: 120, data: .a([10, 0, UInt8(n >> 8), UInt8(n & 0xFF)]))]),
                            now: .zero)
        }
        #expect(cache.query(now: .zero).answers.count == MulticastDNSBrowserCache.maximumEntries)
        #expect(cache.missing().count == 2 * MulticastDNSBrowserCache.maximumEntries)
    }

    @Test func addressesReadAsUsersWriteThem() {
        func v6(_ groups: [UInt16]) -> [UInt8] { groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
        #expect(MulticastDNSBrowserCache.text([192, 168, 1, 20], interface: "eth0") == "192.168.1.20")
        #expect(MulticastDNSBrowserCache.text(v6([0xFE80, 0, 0, 0, 0x87A, 0xBAFF, 0xFE6D, 0x7F8]), interface: "lan0") == "fe80::87a:baff:fe6d:7f8%lan0")
        #expect(MulticastDNSBrowserCache.text(v6([0x2001, 0xDB8, 0, 0, 0, 0, 0, 1]), interface: "lan0") == "2001:db8::1")
        #expect(MulticastDNSBrowserCache.text(v6([1, 0, 0, 2, 0, 0, 0, 3]), interface: "x") == "1:0:0:2::3")
        #expect(MulticastDNSBrowserCache.text(v6([1, 0, 2, 3, 4, 5, 6, 7]), interface: "x") == "1:0:2:3:4:5:6:7")
        #expect(MulticastDNSBrowserCache.text(v6([0, 0, 0, 0, 0, 0, 0, 0]), interface: "x") == "::")
    }
}
