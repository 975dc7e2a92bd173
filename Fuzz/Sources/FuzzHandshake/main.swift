import FuzzDriver
import LevChatCore

/// The handshake's inputs from an unauthenticated peer: a hello to the host, a challenge to the
/// joiner, an auth after a real hello. Only errors, never a crash.
func fuzzHandshake(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let code = try! RoomCode(parsing: "7KQ-M4X")
    let grant = RoomGrant(roomID: RoomID(hex: "0011223344556677")!, secret: Array(repeating: 7, count: 32))!
    // As the host: the bytes as a hello, and as an auth after an honest hello.
    var host = HostHandshake(code: code, grant: grant, sid: Array(repeating: 1, count: 16), scalar: Array(repeating: 3, count: 32))
    _ = try? host.receiveHello(bytes)
    var answering = HostHandshake(code: code, grant: grant, sid: Array(repeating: 1, count: 16), scalar: Array(repeating: 3, count: 32))
    let joiner = ClientHandshake(credentials: RoomCredentials(code: code, grant: nil))
    if (try? answering.receiveHello(joiner.helloBytes)) != nil { _ = try? answering.receiveAuth(bytes) }
    // As the joiner: the bytes as a challenge, by the code and by the room secret.
    var byCode = ClientHandshake(credentials: RoomCredentials(code: code, grant: nil))
    _ = try? byCode.receiveChallenge(bytes)
    var bySecret = ClientHandshake(credentials: RoomCredentials(code: code, grant: grant))
    _ = try? bySecret.receiveChallenge(bytes)
    _ = try? RoomCode(parsing: String(decoding: bytes, as: UTF8.self))
    return 0
}

runFuzzer { data, size in fuzzHandshake(data, size) }
