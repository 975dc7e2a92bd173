import FuzzDriver
import LevChatCore

/// Any header block of a folder's archive, as a hostile sender may make it (Docs/PROTOCOL.md,
/// "Folders"; the receiver unpacks each entry it reads). `Ustar.entry` refuses it or reads it;
/// what it reads lands inside the new folder: each component a safe file name (not empty, not `.`
/// or `..`, no `/`, no NUL, no leading dot, at most 200 bytes, and `SafeFileName` leaves it as
/// it is), a file's size within ustar's 8 GiB; and the entry written back as a header, where its
/// path fits one, reads back the same.
///
/// The first byte chooses how the next 512 (zeros where the input is shorter) are taken: even,
/// as they are; odd, with the ustar magic put in and the checksum made right, so that the fuzzer
/// spends its time on names, types and sizes rather than on a checksum it cannot guess.
func fuzzArchive(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    var block = [UInt8](repeating: 0, count: Ustar.block)
    for index in 0..<min(size - 1, Ustar.block) { block[index] = data[index + 1] }
    if data[0] & 1 == 1 {
        for (offset, byte) in "ustar\u{0}00".utf8.enumerated() { block[257 + offset] = byte }
        for index in 148..<156 { block[index] = UInt8(ascii: " ") }
        let sum = block.reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        for index in 148..<156 { block[index] = 0 }
        for (offset, byte) in (Array(repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits).enumerated() {
            block[148 + offset] = byte
        }
    }
    let read: (path: [String], kind: Ustar.Kind)?
    do { read = try Ustar.entry(block) } catch { return 0 }
    guard let (path, kind) = read else {
        guard block.allSatisfy({ $0 == 0 }) else { fatalError("a block that is not all zeros read as the archive's end") }
        return 0
    }
    guard !path.isEmpty else { fatalError("an entry with no path") }
    for component in path {
        guard !component.isEmpty, component != ".", component != "..", !component.hasPrefix("."),
              !component.utf8.contains(UInt8(ascii: "/")), !component.utf8.contains(0), component.utf8.count <= 200,
              SafeFileName.make(component) == component else {
            fatalError("an unsafe component \(Array(component.utf8)) in \(path)")
        }
    }
    if case .file(let bytes) = kind, !(0...Ustar.maximumFileSize).contains(bytes) { fatalError("a file of \(bytes) bytes") }
    guard let again = try? Ustar.header(path: path.joined(separator: "/"), kind: kind, mode: 0o644, mtime: 0) else {
        return 0  // a path that the archive cannot hold once made safe (say, 255 bytes of "..." parts, each named "file")
    }
    guard let back = try? Ustar.entry(again), back.path == path, back.kind == kind else {
        fatalError("\(path) \(kind) does not read back from its own header")
    }
    return 0
}

runFuzzer { data, size in fuzzArchive(data, size) }
