internal import CExt2fs
import DiskImage
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A libext2fs `io_manager` whose reads come from a `ByteSource`, so a filesystem can be opened
/// inside any source: a partition slice of a raw disk, bytes in memory, or later a qcow2 view.
///
/// libext2fs opens a channel by name; `register` hands out names of the form
/// `fwassemble-source:<token>` and keeps the source under that token until the manager's `open`
/// has moved it into the channel's `private_data`. Read-only: every write entry point fails with
/// `EXT2_ET_RO_FILSYS`, except on a channel whose state has a `writeOverlay` (the fast-commit
/// replay): its writes go into that overlay, never to the source.
enum SourceIOManager {
    /// The one manager structure, allocated once and never freed (libext2fs keeps pointers to it).
    static let manager = ManagerPointer()

    private static let pending = Mutex<[UInt64: ChannelState]>([:])
    private static let counter = Atomic<UInt64>(0)
    private static let namePrefix = "fwassemble-source:"

    /// Registers `state` and returns the channel name to pass to `ext2fs_open2`. Call
    /// `unregister` with that name once the open call has returned.
    static func register(_ state: ChannelState) -> String {
        let token = counter.add(1, ordering: .relaxed).newValue
        pending.withLock { $0[token] = state }
        return namePrefix + String(token)
    }

    static func unregister(_ name: String) {
        guard let token = token(of: name) else { return }
        _ = pending.withLock { $0.removeValue(forKey: token) }
    }

    private static func token(of name: String) -> UInt64? {
        guard name.hasPrefix(namePrefix) else { return nil }
        return UInt64(name.dropFirst(namePrefix.count))
    }

    fileprivate static func lookup(_ name: String) -> ChannelState? {
        guard let token = token(of: name) else { return nil }
        return pending.withLock { $0[token] }
    }

    /// Owner of the C `struct_io_manager`; Sendable because it is written once, before publication.
    struct ManagerPointer: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<struct_io_manager>

        init() {
            let p = UnsafeMutablePointer<struct_io_manager>.allocate(capacity: 1)
            p.initialize(to: struct_io_manager())
            p.pointee.magic = errcode_t(EXT2_ET_MAGIC_IO_MANAGER)
            p.pointee.name = UnsafePointer(strdup("fwassemble ByteSource I/O manager"))
            p.pointee.open = sourceOpen
            p.pointee.close = sourceClose
            p.pointee.set_blksize = sourceSetBlockSize
            p.pointee.read_blk = sourceReadBlock
            p.pointee.read_blk64 = sourceReadBlock64
            p.pointee.write_blk = sourceWriteBlock
            p.pointee.write_blk64 = sourceWriteBlock64
            p.pointee.flush = sourceFlush
            p.pointee.set_option = sourceSetOption
            pointer = p
        }
    }
}

/// What one open channel reads from, plus the first Swift error a read met (libext2fs passes only
/// integer codes back, so the reader picks the full error up from here).
///
/// `@unchecked Sendable`: it crosses the registry's lock once; afterwards only the thread using
/// the reader touches it (readers are used from one thread at a time).
final class ChannelState: @unchecked Sendable {
    let source: any ByteSource
    /// Where writes go (copy-on-write, whole blocks of the overlay's size); nil: read-only.
    /// `source` must read this overlay first (an `OverlaySource` over it).
    let writeOverlay: BlockOverlay?
    private var lastError: FWError?

    /// A small direct-mapped cache of single-block reads: libext2fs re-reads the same inode-table,
    /// extent and indirect blocks for neighbouring inodes and file blocks.
    private static let cacheSlots = 64
    private var cacheKeys: [UInt64?]
    private var cacheData: [[UInt8]]
    fileprivate var cacheBlockSize = 0

    init(source: any ByteSource, writeOverlay: BlockOverlay? = nil) {
        self.source = source
        self.writeOverlay = writeOverlay
        cacheKeys = Array(repeating: nil, count: Self.cacheSlots)
        cacheData = Array(repeating: [], count: Self.cacheSlots)
    }

    /// The first source error since the last call, cleared.
    func takeError() -> FWError? {
        defer { lastError = nil }
        return lastError
    }

    func invalidateCache(blockSize: Int) {
        cacheBlockSize = blockSize
        for i in cacheKeys.indices {
            cacheKeys[i] = nil
            cacheData[i] = []
        }
    }

    /// Reads `byteCount` bytes at `block * blockSize` into `data`. Bytes past the end of the
    /// source read as zeros and make the result `EXT2_ET_SHORT_READ`, as the unix manager does.
    func read(block: UInt64, blockSize: Int, byteCount: Int, into data: UnsafeMutableRawPointer) -> errcode_t {
        let (offset, overflow) = block.multipliedReportingOverflow(by: UInt64(blockSize))
        guard !overflow else { return errcode_t(EXT2_ET_LLSEEK_FAILED) }
        let buffer = UnsafeMutableRawBufferPointer(start: data, count: byteCount)
        let cacheable = byteCount == blockSize && blockSize == cacheBlockSize && blockSize <= 65536
        let slot = Int(block % UInt64(Self.cacheSlots))
        if cacheable, cacheKeys[slot] == block {
            cacheData[slot].withUnsafeBytes { buffer.copyMemory(from: $0) }
            return 0
        }
        let got: Int
        do {
            got = try source.read(at: offset, into: buffer)
        } catch {
            if lastError == nil {
                lastError = FWError(error).within(source.place)
            }
            zero(buffer)
            return errcode_t(EIO)
        }
        if got < byteCount {
            zero(UnsafeMutableRawBufferPointer(rebasing: buffer[got...]))
            if lastError == nil {
                lastError = FWError(.corrupt, "read of \(byteCount) bytes at offset \(offset) is past the end of the \(source.size)-byte source (truncated image?)", at: source.place)
            }
            return errcode_t(EXT2_ET_SHORT_READ)
        }
        if cacheable {
            cacheKeys[slot] = block
            cacheData[slot] = Array(UnsafeRawBufferPointer(buffer))
        }
        return 0
    }
}

extension ChannelState {
    /// Writes `byteCount` bytes at `block * blockSize` into the overlay: each overlay block the
    /// range touches is read (overlay first, then the source), patched and kept.
    func write(block: UInt64, blockSize: Int, byteCount: Int, from data: UnsafeRawPointer) -> errcode_t {
        guard let overlay = writeOverlay else { return errcode_t(EXT2_ET_RO_FILSYS) }
        let (offset, overflow) = block.multipliedReportingOverflow(by: UInt64(blockSize))
        guard !overflow, offset.addingReportingOverflow(UInt64(byteCount)).overflow == false,
              offset + UInt64(byteCount) <= source.size else { return errcode_t(EXT2_ET_LLSEEK_FAILED) }
        let size = UInt64(overlay.blockSize)
        var position = offset
        let end = offset + UInt64(byteCount)
        do {
            while position < end {
                let target = position / size
                let within = Int(position % size)
                let count = min(Int(size) - within, Int(end - position))
                var bytes = try source.bytes(at: target * size, count: Int(size))
                bytes.withUnsafeMutableBytes { raw in
                    raw.baseAddress!.advanced(by: within).copyMemory(from: data.advanced(by: Int(position - offset)), byteCount: count)
                }
                try overlay.set(target, bytes)
                position += UInt64(count)
            }
        } catch {
            if lastError == nil { lastError = FWError(error).within(source.place) }
            return errcode_t(EIO)
        }
        invalidateCache(blockSize: cacheBlockSize)
        return 0
    }
}

// MARK: - The C entry points (no captures: the state travels in the channel's private_data).

private func state(of channel: io_channel?) -> ChannelState? {
    guard let raw = channel?.pointee.private_data else { return nil }
    return Unmanaged<ChannelState>.fromOpaque(raw).takeUnretainedValue()
}

private func sourceOpen(_ name: UnsafePointer<CChar>?, _ flags: Int32, _ out: UnsafeMutablePointer<io_channel?>?) -> errcode_t {
    guard let name, let out else { return errcode_t(EXT2_ET_BAD_DEVICE_NAME) }
    guard let state = SourceIOManager.lookup(String(cString: name)) else { return errcode_t(EXT2_ET_BAD_DEVICE_NAME) }
    if flags & Int32(IO_FLAG_RW) != 0, state.writeOverlay == nil { return errcode_t(EXT2_ET_RO_FILSYS) }
    let channel = UnsafeMutablePointer<struct_io_channel>.allocate(capacity: 1)
    channel.initialize(to: struct_io_channel())
    channel.pointee.magic = errcode_t(EXT2_ET_MAGIC_IO_CHANNEL)
    channel.pointee.manager = SourceIOManager.manager.pointer
    channel.pointee.name = strdup(name)
    channel.pointee.block_size = 1024
    channel.pointee.refcount = 1
    channel.pointee.private_data = Unmanaged.passRetained(state).toOpaque()
    state.invalidateCache(blockSize: 1024)
    out.pointee = channel
    return 0
}

private func sourceClose(_ channel: io_channel?) -> errcode_t {
    guard let channel else { return 0 }
    channel.pointee.refcount -= 1
    if channel.pointee.refcount > 0 { return 0 }
    if let raw = channel.pointee.private_data {
        Unmanaged<ChannelState>.fromOpaque(raw).release()
    }
    free(channel.pointee.name)
    channel.deinitialize(count: 1)
    channel.deallocate()
    return 0
}

private func sourceSetBlockSize(_ channel: io_channel?, _ size: Int32) -> errcode_t {
    guard let channel, size > 0 else { return errcode_t(EXT2_ET_INVALID_ARGUMENT) }
    channel.pointee.block_size = size
    state(of: channel)?.invalidateCache(blockSize: Int(size))
    return 0
}

private func sourceReadBlock64(_ channel: io_channel?, _ block: UInt64, _ count: Int32, _ data: UnsafeMutableRawPointer?) -> errcode_t {
    guard let channel, let data, let state = state(of: channel) else { return errcode_t(EXT2_ET_BAD_DEVICE_NAME) }
    let blockSize = Int(channel.pointee.block_size)
    // A negative count is a byte count (libext2fs convention); a positive one counts blocks.
    let (bytes, overflow) = count < 0 ? (Int(-Int64(count)), false) : Int(count).multipliedReportingOverflow(by: blockSize)
    guard !overflow, bytes <= maximumSingleRead else { return errcode_t(EXT2_ET_INVALID_ARGUMENT) }
    return state.read(block: block, blockSize: blockSize, byteCount: bytes, into: data)
}

private func sourceReadBlock(_ channel: io_channel?, _ block: UInt, _ count: Int32, _ data: UnsafeMutableRawPointer?) -> errcode_t {
    sourceReadBlock64(channel, UInt64(block), count, data)
}

private func sourceWriteBlock(_ channel: io_channel?, _ block: UInt, _ count: Int32, _ data: UnsafeRawPointer?) -> errcode_t {
    sourceWriteBlock64(channel, UInt64(block), count, data)
}

private func sourceWriteBlock64(_ channel: io_channel?, _ block: UInt64, _ count: Int32, _ data: UnsafeRawPointer?) -> errcode_t {
    guard let channel, let data, let state = state(of: channel) else { return errcode_t(EXT2_ET_BAD_DEVICE_NAME) }
    guard state.writeOverlay != nil else { return errcode_t(EXT2_ET_RO_FILSYS) }
    let blockSize = Int(channel.pointee.block_size)
    let (bytes, overflow) = count < 0 ? (Int(-Int64(count)), false) : Int(count).multipliedReportingOverflow(by: blockSize)
    guard !overflow, bytes <= maximumSingleRead else { return errcode_t(EXT2_ET_INVALID_ARGUMENT) }
    return state.write(block: block, blockSize: blockSize, byteCount: bytes, from: data)
}

private func sourceFlush(_ channel: io_channel?) -> errcode_t { 0 }

private func sourceSetOption(_ channel: io_channel?, _ option: UnsafePointer<CChar>?, _ arg: UnsafePointer<CChar>?) -> errcode_t {
    errcode_t(EXT2_ET_INVALID_ARGUMENT)
}
