import LevChatCore
import LevChatTransport
import Logging
import Synchronization
import Testing
@testable import LevChatPeer

/// The joiner's choice among advertisements, without a network: fed `DiscoveredService`s directly.
/// Nothing in an advertisement says which code it takes, so every room is offered; the handshake
/// decides (tested end to end in DiscoveryLANTests).
@Suite struct RoomFinderTests {
    func service(_ name: String, room: RoomID, epoch: Int, address: String, port: Int = 7000, txt: [String: String]? = nil) -> DiscoveredService {
        let ad = RoomAdvertisement(room: room, host: NodeID.random(), epoch: epoch, port: port)
        let pairs = txt ?? Dictionary(uniqueKeysWithValues: ad.txtRecord.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts[1])
        })
        return DiscoveredService(instanceName: name, hostName: "\(name).local", address: address, port: port, txt: pairs)
    }

    func finder() -> RoomFinder { RoomFinder(logger: Logger(label: "test")) }

    @Test func roomsInOrderEachByHighestEpochThenIPv4First() throws {
        let first = RoomID.random(), second = RoomID.random()
        let finder = finder()
        finder.consider(service("a-old", room: first, epoch: 1, address: "10.0.0.1"))
        finder.consider(service("b", room: second, epoch: 50, address: "10.0.0.9"))
        finder.consider(service("a-new", room: first, epoch: 2, address: "fe80::2%lan0"))
        finder.consider(service("a-new", room: first, epoch: 2, address: "10.0.0.2"))
        #expect(finder.nextEndpoint() == "10.0.0.2:7000")
        #expect(finder.nextEndpoint() == "[fe80::2%lan0]:7000")
        #expect(finder.nextEndpoint() == "10.0.0.1:7000")
        #expect(finder.nextEndpoint() == "10.0.0.9:7000")
        #expect(finder.nextEndpoint() == nil)
    }

    /// A room that refused the code at both its addresses (tried at once) is one room refused,
    /// as the joiner with a wrong code is told; two rooms are two.
    @Test func aRoomThatRefusedAtEachAddressIsOneRoom() throws {
        let finder = finder()
        let room = RoomID.random()
        finder.consider(service("alice", room: room, epoch: 1, address: "10.0.0.1"))
        finder.consider(service("alice", room: room, epoch: 1, address: "fe80::1%lan0"))
        let (v4, v6) = (try #require(finder.nextEndpoint()), try #require(finder.nextEndpoint()))
        finder.notThisRoom(v4)
        finder.notThisRoom(v6)
        #expect(finder.roomsThatRefused == 1)
        finder.consider(service("carol", room: .random(), epoch: 1, address: "10.0.0.3"))
        finder.notThisRoom(try #require(finder.nextEndpoint()))
        #expect(finder.roomsThatRefused == 2)
    }

    @Test func junkAndOtherVersionsAreIgnored() throws {
        let finder = finder()
        finder.consider(service("junk", room: .random(), epoch: 9, address: "10.0.0.7", txt: ["txtvers": "2", "rid": "nonsense"]))
        finder.consider(service("v1", room: .random(), epoch: 9, address: "10.0.0.8",
                                txt: ["txtvers": "1", "pv": "1-1", "rs": "00", "rt": "00", "ep": "1"]))
        finder.consider(service("future", room: .random(), epoch: 9, address: "10.0.0.9",
                                txt: ["txtvers": "2", "pv": "7-9", "rid": "0011223344556677", "ep": "1"]))
        #expect(finder.nextEndpoint() == nil)
    }

    @Test func aRemovedInstanceIsNotOffered() async throws {
        let finder = finder()
        let (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
        continuation.yield(.found(service("gone", room: .random(), epoch: 1, address: "10.0.0.1")))
        continuation.yield(.removed(instanceName: "gone"))
        continuation.finish()
        await finder.consume(events)
        #expect(finder.nextEndpoint() == nil)
    }

    @Test func aFloodOfFakeRoomsFromOneMachineDoesNotCrowdOutTheRealOne() throws {
        let finder = finder()
        for i in 0..<40 {
            finder.consider(service("decoy\(i)", room: .random(), epoch: 1, address: "10.0.0.66", port: 7100 + i))
        }
        finder.consider(service("real", room: .random(), epoch: 1, address: "10.0.0.1"))
        // The flooding machine got its small budget of rooms and no more.
        var offered: [String] = []
        while let next = finder.nextEndpoint() { offered.append(next) }
        #expect(offered.filter { $0.hasPrefix("10.0.0.66") }.count == RoomFinder.maximumRoomsPerSource)
        #expect(offered.contains("10.0.0.1:7000"))
    }

    /// Rooms past the budget are ignored with one notice, not one each: a LAN that advertises
    /// thousands of rooms must not print thousands of lines while a peer joins.
    @Test func roomsPastTheBudgetAreSaidOnce() async throws {
        let said = Mutex<[String]>([])
        let console = Console(json: false, sink: { fd, bytes in if fd == 2 { said.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } } })
        let finder = RoomFinder(logger: Logger(label: "test") { label in ConsoleLogHandler(label: label, console: console, level: .notice) })
        for i in 0..<40 {
            finder.consider(service("decoy\(i)", room: .random(), epoch: 1, address: "10.0.0.66", port: 7100 + i))
        }
        console.finish()
        let ignored = said.withLock { $0 }.joined().split(separator: "\n").filter { $0.contains("too many different rooms to try") }
        #expect(ignored.count == 1, "\(ignored)")
        #expect(ignored.first?.contains("more such rooms are ignored without a word") == true)
    }

    @Test func aRoomThatRefusedTheCodeIsNotTriedAtItsOtherAddresses() {
        let theirs = RoomID.random(), ours = RoomID.random()
        let finder = finder()
        finder.consider(service("theirs", room: theirs, epoch: 1, address: "10.0.0.5"))
        finder.consider(service("theirs", room: theirs, epoch: 1, address: "fe80::5%lan0"))
        finder.consider(service("ours", room: ours, epoch: 1, address: "10.0.0.6"))
        #expect(finder.nextEndpoint() == "10.0.0.5:7000")
        finder.notThisRoom("10.0.0.5:7000")
        #expect(finder.nextEndpoint() == "10.0.0.6:7000")
        #expect(finder.nextEndpoint() == nil)
    }

    @Test func aCopyOfARoomsIDThatRefusesTheCodeDoesNotHideTheRealRoom() {
        let room = RoomID.random()
        let finder = finder()
        finder.consider(service("real", room: room, epoch: 1, address: "10.0.0.1"))
        finder.consider(service("copy", room: room, epoch: 999_999, address: "10.0.0.66"))
        #expect(finder.nextEndpoint() == "10.0.0.66:7000")  // the higher epoch first
        finder.notThisRoom("10.0.0.66:7000")
        #expect(finder.nextEndpoint() == "10.0.0.1:7000")
    }

    @Test func aWithdrawnRoomFreesItsPlaceInTheBudget() async {
        let finder = finder()
        let (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
        // One machine makes rooms one after another: the ones it closed do not count against it.
        for i in 0..<(RoomFinder.maximumRoomsPerSource + 4) {
            continuation.yield(.found(service("room\(i)", room: .random(), epoch: 1, address: "10.0.0.9", port: 7000 + i)))
            continuation.yield(.removed(instanceName: "room\(i)"))
        }
        continuation.yield(.found(service("now", room: .random(), epoch: 1, address: "10.0.0.9", port: 9000)))
        continuation.finish()
        await finder.consume(events)
        #expect(finder.nextEndpoint() == "10.0.0.9:9000")
    }
}
