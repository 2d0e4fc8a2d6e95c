import DiskImage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The latest version of each block a journal replay wrote, kept apart from the image (which is
/// never written): in memory up to `memoryLimit` bytes, then in an unlinked temporary file.
final class BlockOverlay {
    /// Bytes of replayed blocks kept in memory before the rest spill to a temporary file.
    static let defaultMemoryLimit = 256 << 20

    let blockSize: Int
    private let memoryLimit: Int
    private enum Slot { case memory(Int), file(UInt64) }
    private var slots: [UInt64: Slot] = [:]
    private var memory: [[UInt8]] = []
    private var spill: Int32 = -1
    private var spillEnd: UInt64 = 0

    init(blockSize: Int, memoryLimit: Int = BlockOverlay.defaultMemoryLimit) {
        self.blockSize = blockSize
        self.memoryLimit = memoryLimit
    }

    deinit {
        if spill >= 0 { close(spill) }
    }

    /// Number of distinct blocks held.
    var count: Int { slots.count }
    /// True once blocks went to the temporary file.
    var spilled: Bool { spill >= 0 }

    func contains(_ block: UInt64) -> Bool { slots[block] != nil }

    /// The block numbers held, in no particular order.
    var blockNumbers: [UInt64] { Array(slots.keys) }

    /// Keeps `bytes` (exactly one block) as the content of `block`, replacing an older version.
    func set(_ block: UInt64, _ bytes: [UInt8]) throws {
        precondition(bytes.count == blockSize)
        switch slots[block] {
        case .memory(let i):
            memory[i] = bytes
            return
        case .file(let offset):
            try writeSpill(bytes, at: offset)
            return
        case nil:
            break
        }
        if (memory.count + 1) * blockSize <= memoryLimit {
            slots[block] = .memory(memory.count)
            memory.append(bytes)
            return
        }
        if spill < 0 { try openSpill() }
        let offset = spillEnd
        try writeSpill(bytes, at: offset)
        spillEnd += UInt64(blockSize)
        slots[block] = .file(offset)
    }

    /// Copies the held version of `block` (from `from` bytes into it) into `buffer`; false when
    /// the block is not held.
    func read(_ block: UInt64, from: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        guard let slot = slots[block] else { return false }
        switch slot {
        case .memory(let i):
            memory[i].withUnsafeBytes { raw in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[from..<(from + buffer.count)]))
            }
        case .file(let offset):
            var done = 0
            while done < buffer.count {
                let n = pread(spill, buffer.baseAddress! + done, buffer.count - done, off_t(offset + UInt64(from + done)))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw FWError(.io, "cannot read the journal overlay's temporary file (errno \(errno))") }
                done += n
            }
        }
        return true
    }

    private func openSpill() throws {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((dir + "/fwassemble-journal.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FWError(.io, "cannot create a temporary file for the journal overlay in \(dir) (errno \(errno))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        spill = fd
    }

    private func writeSpill(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(spill, raw.baseAddress! + done, raw.count - done, off_t(offset + UInt64(done)))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw FWError(.io, "cannot write the journal overlay's temporary file (errno \(errno))") }
                done += n
            }
        }
    }
}

/// A filesystem's bytes with replayed journal blocks laid over them (copy-on-write view; the
/// base is only read).
///
/// `@unchecked Sendable`: the overlay is filled before a reader uses this source (the journal
/// replay, then the fast-commit replay writing through a channel on the opening thread) and never
/// changed afterwards; reads from its temporary file use pread.
final class OverlaySource: ByteSource, @unchecked Sendable {
    let base: any ByteSource
    private let overlay: BlockOverlay
    var size: UInt64 { base.size }
    var name: String { base.name }
    var place: FWError.Place { base.place }

    init(base: any ByteSource, overlay: BlockOverlay) {
        self.base = base
        self.overlay = overlay
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let blockSize = UInt64(overlay.blockSize)
        var baseEnded = false
        return try readInPieces(size: size, at: offset, into: buffer) { position, rest in
            guard !baseEnded else { return 0 }
            let block = position / blockSize
            let within = Int(position % blockSize)
            let chunk = min(rest.count, Int(blockSize) - within)
            if try overlay.read(block, from: within, into: UnsafeMutableRawBufferPointer(rebasing: rest[0..<chunk])) {
                return chunk
            }
            // Join the run of blocks that are not replayed into one read of the base.
            var run = chunk
            var next = block + 1
            while run < rest.count, !overlay.contains(next) {
                run = min(rest.count, run + Int(blockSize))
                next += 1
            }
            let got = try base.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: rest[0..<run]))
            baseEnded = got < run
            return got
        }
    }
}
