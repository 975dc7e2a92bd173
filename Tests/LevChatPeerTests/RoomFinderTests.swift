import LevChatCore
import LevChatTransport
import Logging
import Testing
@testable import LevChatPeer

/// The joiner's choice among advertisements, without a network: fed `DiscoveredService`s directly.
@Suite struct RoomFinderTests {
    static let code = try! RoomCode(parsing: "ABC-123")
    static let cost = KDFCost(logN: 4)

    func service(_ name: String, keys: RoomKeys, epoch: Int, address: String, port: Int = 7000, txt: [String: String]? = nil) -> DiscoveredService {
        let ad = RoomAdvertisement(keys: keys, host: NodeID.random(), epoch: epoch, port: port)
        let pairs = txt ?? Dictionary(uniqueKeysWithValues: ad.txtRecord.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts[1])
        })
        return DiscoveredService(instanceName: name, hostName: "\(name).local", address: address, port: port, txt: pairs)
    }

    func finder() -> RoomFinder {
        RoomFinder(keyring: RoomKeyring(code: Self.code, minimumCost: Self.cost), logger: Logger(label: "test"))
    }

    @Test func onlyTheRoomOfTheCodeIsOfferedHighestEpochAndIPv4First() throws {
        let ours = try RoomKeys(code: Self.code, salt: RoomKeys.randomSalt(), cost: Self.cost)
        let theirs = try RoomKeys(code: RoomCode(parsing: "ZZZ-ZZZ"), salt: RoomKeys.randomSalt(), cost: Self.cost)
        let finder = finder()
        finder.consider(service("other", keys: theirs, epoch: 50, address: "10.0.0.9"))
        finder.consider(service("old", keys: ours, epoch: 1, address: "10.0.0.1"))
        finder.consider(service("new", keys: ours, epoch: 2, address: "fe80::2%lan0"))
        finder.consider(service("new", keys: ours, epoch: 2, address: "10.0.0.2"))
        #expect(finder.foundRoom)
        #expect(finder.nextEndpoint() == "10.0.0.2:7000")
        #expect(finder.nextEndpoint() == "[fe80::2%lan0]:7000")
        #expect(finder.nextEndpoint() == "10.0.0.1:7000")
        #expect(finder.nextEndpoint() == nil)
    }

    @Test func junkAndWeakAdvertisementsAreIgnored() throws {
        let ours = try RoomKeys(code: Self.code, salt: RoomKeys.randomSalt(), cost: Self.cost)
        let cheap = try RoomKeys(code: Self.code, salt: RoomKeys.randomSalt(), cost: KDFCost(logN: 2))
        let finder = finder()
        finder.consider(service("junk", keys: ours, epoch: 9, address: "10.0.0.7", txt: ["txtvers": "1", "rt": "nonsense"]))
        finder.consider(service("cheap", keys: cheap, epoch: 9, address: "10.0.0.8"))
        #expect(!finder.foundRoom)
        #expect(finder.nextEndpoint() == nil)
    }

    @Test func aRemovedInstanceIsNotOffered() async throws {
        let ours = try RoomKeys(code: Self.code, salt: RoomKeys.randomSalt(), cost: Self.cost)
        let finder = finder()
        let (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
        continuation.yield(.found(service("gone", keys: ours, epoch: 1, address: "10.0.0.1")))
        continuation.yield(.removed(instanceName: "gone"))
        continuation.finish()
        await finder.consume(events)
        #expect(finder.nextEndpoint() == nil)
    }

    @Test func aFloodOfFakeRoomsFromOneMachineDoesNotCrowdOutTheRealOne() throws {
        let finder = finder()
        for i in 0..<40 {
            let decoy = try RoomKeys(code: RoomCode.random(), salt: RoomKeys.randomSalt(), cost: Self.cost)
            finder.consider(service("decoy\(i)", keys: decoy, epoch: 1, address: "10.0.0.66"))
        }
        let ours = try RoomKeys(code: Self.code, salt: RoomKeys.randomSalt(), cost: Self.cost)
        finder.consider(service("real", keys: ours, epoch: 1, address: "10.0.0.1"))
        #expect(finder.nextEndpoint() == "10.0.0.1:7000")
        // The flooding machine got its small budget of derivations and no more.
        let late = try RoomKeys(code: Self.code, salt: RoomKeys.randomSalt(), cost: Self.cost)
        finder.consider(service("late", keys: late, epoch: 5, address: "10.0.0.66"))
        #expect(finder.nextEndpoint() == nil)
    }
}
