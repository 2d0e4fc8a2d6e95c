import CSQLite
import DiskImage
import Foundation

/// The VFS SQLite reads through (registered once as `fwa-memory`): a database's files are the
/// disk's bytes (`ByteSource`s) under a private copy-on-write overlay in memory, so SQLite can do
/// at open what the device's SQLite would do at its next open (roll a hot `-journal` back, read and
/// checkpoint a `-wal`) without anything being written to the disk image or to a temporary file.
/// The overlay is bounded (`SQLite.overlayBudget`); beyond it a write fails (SQLITE_FULL).
enum MemoryVFS {
    static let name = "fwa-memory"
    static let block = 4096

    /// One file of a database (main, `-journal`, `-wal`): its disk bytes, the blocks written
    /// over them, its size and whether SQLite deleted it.
    final class File {
        let source: (any ByteSource)?
        var size: UInt64
        var blocks: [UInt64: [UInt8]] = [:]
        var deleted = false

        init(source: (any ByteSource)?) {
            self.source = source
            self.size = source?.size ?? 0
        }
    }

    /// A database's files by the name SQLite opens them under, the overlay's use, and the first
    /// read error met (SQLite only sees an error code; the caller reports this one).
    final class Files {
        var byName: [String: File]
        var overlayBytes = 0
        let budget: Int
        var firstError: FWError?

        init(_ byName: [String: File], budget: Int) {
            self.byName = byName
            self.budget = budget
        }

        func note(_ error: any Error) {
            if firstError == nil { firstError = FWError(error) }
        }
    }

    /// The Swift object behind an open `fwa_sqlite_file`.
    final class Handle {
        let file: File
        let files: Files
        init(file: File, files: Files) { (self.file, self.files) = (file, files) }
    }

    /// Open databases' files by name (SQLite calls the VFS from C: the registry finds them).
    final class Registry: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [String: Files] = [:]
        private var next = 0

        /// A fresh name for a database ("/fwa/7/db"): its `-journal` and `-wal` follow from it.
        func add(_ make: (String) -> Files) -> String {
            lock.lock()
            defer { lock.unlock() }
            next += 1
            let name = "/fwa/\(next)/db"
            entries[name] = make(name)
            return name
        }

        func remove(_ name: String) {
            lock.lock()
            defer { lock.unlock() }
            entries[name] = nil
        }

        /// The files and the file of a path SQLite names (`/fwa/7/db-wal`).
        func lookup(_ path: String) -> (Files, File?)? {
            lock.lock()
            defer { lock.unlock() }
            for suffix in ["", "-journal", "-wal"] where path.hasSuffix(suffix) {
                if let files = entries[String(path.dropLast(suffix.count))] { return (files, files.byName[path]) }
            }
            return nil
        }
    }

    static let registry = Registry()

    /// Registered on first use (SQLite keeps the pointer: it is never freed).
    nonisolated(unsafe) static let vfs: UnsafeMutablePointer<sqlite3_vfs> = {
        let vfs = UnsafeMutablePointer<sqlite3_vfs>.allocate(capacity: 1)
        vfs.initialize(to: sqlite3_vfs())
        vfs.pointee.iVersion = 1
        vfs.pointee.szOsFile = Int32(MemoryLayout<fwa_sqlite_file>.stride)
        vfs.pointee.mxPathname = 512
        vfs.pointee.zName = UnsafePointer(strdup(name))
        vfs.pointee.xOpen = xOpen
        vfs.pointee.xDelete = { _, path, _ in
            guard let path, let (_, file) = registry.lookup(String(cString: path)), let file else { return Int32(FWA_SQLITE_IOERR_DELETE_NOENT) }
            file.deleted = true
            return SQLITE_OK
        }
        vfs.pointee.xAccess = { _, path, _, out in
            guard let path, let out else { return Int32(FWA_SQLITE_IOERR_ACCESS) }
            let file = registry.lookup(String(cString: path))?.1
            out.pointee = file.map { !$0.deleted && $0.size > 0 } == true ? 1 : 0
            return SQLITE_OK
        }
        vfs.pointee.xFullPathname = { _, path, count, out in
            guard let path, let out, count > 0 else { return SQLITE_CANTOPEN }
            let length = strlen(path)
            guard length < Int(count) else { return SQLITE_CANTOPEN }
            memcpy(out, path, length + 1)
            return SQLITE_OK
        }
        // Randomness, sleep and time as the default VFS gives them (SQLite asks for them rarely).
        vfs.pointee.xRandomness = { _, count, out in
            guard let out, count > 0 else { return 0 }
            memset(out, 0, Int(count))
            return count
        }
        vfs.pointee.xSleep = { _, micro in micro }
        vfs.pointee.xCurrentTime = { _, out in
            out?.pointee = 2_440_587.5 + Date().timeIntervalSince1970 / 86_400
            return SQLITE_OK
        }
        vfs.pointee.xGetLastError = { _, _, _ in 0 }
        sqlite3_vfs_register(vfs, 0)
        return vfs
    }()

    nonisolated(unsafe) static let methods: UnsafeMutablePointer<sqlite3_io_methods> = {
        let m = UnsafeMutablePointer<sqlite3_io_methods>.allocate(capacity: 1)
        m.initialize(to: sqlite3_io_methods())
        m.pointee.iVersion = 1
        m.pointee.xClose = { file in
            guard let file else { return SQLITE_OK }
            let f = UnsafeMutableRawPointer(file).assumingMemoryBound(to: fwa_sqlite_file.self)
            if let context = f.pointee.context { Unmanaged<Handle>.fromOpaque(context).release() }
            f.pointee.context = nil
            return SQLITE_OK
        }
        m.pointee.xRead = { file, buffer, amount, offset in
            guard let h = handle(file), let buffer, amount >= 0, offset >= 0 else { return Int32(FWA_SQLITE_IOERR_READ) }
            return read(h, into: UnsafeMutableRawBufferPointer(start: buffer, count: Int(amount)), at: UInt64(offset))
        }
        m.pointee.xWrite = { file, buffer, amount, offset in
            guard let h = handle(file), let buffer, amount >= 0, offset >= 0 else { return Int32(FWA_SQLITE_IOERR_WRITE) }
            return write(h, UnsafeRawBufferPointer(start: buffer, count: Int(amount)), at: UInt64(offset))
        }
        m.pointee.xTruncate = { file, size in
            guard let h = handle(file), size >= 0 else { return Int32(FWA_SQLITE_IOERR_TRUNCATE) }
            h.file.size = min(h.file.size, UInt64(size))
            let first = (h.file.size + UInt64(block) - 1) / UInt64(block)
            for key in h.file.blocks.keys where key >= first {
                h.files.overlayBytes -= block
                h.file.blocks[key] = nil
            }
            return SQLITE_OK
        }
        m.pointee.xSync = { _, _ in SQLITE_OK }
        m.pointee.xFileSize = { file, out in
            guard let h = handle(file), let out else { return Int32(FWA_SQLITE_IOERR_FSTAT) }
            out.pointee = sqlite3_int64(clamping: h.file.size)
            return SQLITE_OK
        }
        // One connection per database, nobody else: every lock is granted.
        m.pointee.xLock = { _, _ in SQLITE_OK }
        m.pointee.xUnlock = { _, _ in SQLITE_OK }
        m.pointee.xCheckReservedLock = { _, out in
            out?.pointee = 0
            return SQLITE_OK
        }
        m.pointee.xFileControl = { _, _, _ in SQLITE_NOTFOUND }
        m.pointee.xSectorSize = { _ in 512 }
        m.pointee.xDeviceCharacteristics = { _ in 0 }
        return m
    }()

    static func handle(_ file: UnsafeMutablePointer<sqlite3_file>?) -> Handle? {
        guard let file else { return nil }
        let f = UnsafeMutableRawPointer(file).assumingMemoryBound(to: fwa_sqlite_file.self)
        return f.pointee.context.map { Unmanaged<Handle>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Opens a file of a registered database; a file it does not have is made empty (in memory)
    /// when SQLite asks to create it (a `-wal` of a WAL database), else SQLITE_CANTOPEN.
    static let xOpen: @convention(c) (UnsafeMutablePointer<sqlite3_vfs>?, UnsafePointer<CChar>?, UnsafeMutablePointer<sqlite3_file>?,
                                      Int32, UnsafeMutablePointer<Int32>?) -> Int32 = { _, path, file, flags, outFlags in
        guard let file else { return SQLITE_CANTOPEN }
        file.pointee.pMethods = nil
        guard let path, let (files, existing) = registry.lookup(String(cString: path)) else { return SQLITE_CANTOPEN }
        let name = String(cString: path)
        var target = existing
        if target == nil || target?.deleted == true {
            guard flags & SQLITE_OPEN_CREATE != 0 else { return SQLITE_CANTOPEN }
            target = File(source: nil)
            files.byName[name] = target
        }
        guard let target else { return SQLITE_CANTOPEN }
        let f = UnsafeMutableRawPointer(file).assumingMemoryBound(to: fwa_sqlite_file.self)
        f.pointee.context = Unmanaged.passRetained(Handle(file: target, files: files)).toOpaque()
        f.pointee.base.pMethods = UnsafePointer(methods)
        outFlags?.pointee = flags
        return SQLITE_OK
    }

    /// `buffer.count` bytes at `offset`: overlay blocks first, the disk's bytes under them; a
    /// short read fills the rest with zeros (as SQLite requires).
    static func read(_ h: Handle, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int32 {
        var done = 0
        while done < buffer.count {
            let at = offset + UInt64(done)
            guard at < h.file.size else { break }
            let index = at / UInt64(block)
            let inBlock = Int(at % UInt64(block))
            let n = min(buffer.count - done, block - inBlock, Int(min(UInt64(Int.max), h.file.size - at)))
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
            if let b = h.file.blocks[index] {
                b.withUnsafeBytes { piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[inBlock..<(inBlock + n)])) }
            } else if let source = h.file.source {
                do {
                    var got = 0
                    while got < n {
                        let r = try source.read(at: at + UInt64(got), into: UnsafeMutableRawBufferPointer(rebasing: piece[got...]))
                        if r == 0 { break }
                        got += r
                    }
                    if got < n {
                        if let p = piece.baseAddress { memset(p + got, 0, n - got) }
                    }
                } catch {
                    h.files.note(error)
                    return Int32(FWA_SQLITE_IOERR_READ)
                }
            } else {
                if let p = piece.baseAddress { memset(p, 0, n) }
            }
            done += n
        }
        if done < buffer.count {
            if let p = buffer.baseAddress { memset(p + done, 0, buffer.count - done) }
            return Int32(FWA_SQLITE_IOERR_SHORT_READ)
        }
        return SQLITE_OK
    }

    /// A write into the overlay (a block copied from the disk's bytes first), within the budget.
    static func write(_ h: Handle, _ bytes: UnsafeRawBufferPointer, at offset: UInt64) -> Int32 {
        var done = 0
        while done < bytes.count {
            let at = offset + UInt64(done)
            let index = at / UInt64(block)
            let inBlock = Int(at % UInt64(block))
            let n = min(bytes.count - done, block - inBlock)
            var b: [UInt8]
            if let existing = h.file.blocks[index] {
                b = existing
            } else {
                guard h.files.overlayBytes + block <= h.files.budget else { return SQLITE_FULL }
                b = [UInt8](repeating: 0, count: block)
                let start = index * UInt64(block)
                if start < h.file.size {
                    let rc = b.withUnsafeMutableBytes { raw in
                        read(h, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(min(UInt64(block), h.file.size - start))]), at: start)
                    }
                    guard rc == SQLITE_OK || rc == Int32(FWA_SQLITE_IOERR_SHORT_READ) else { return Int32(FWA_SQLITE_IOERR_WRITE) }
                }
                h.files.overlayBytes += block
            }
            b.withUnsafeMutableBytes { raw in
                UnsafeMutableRawBufferPointer(rebasing: raw[inBlock..<(inBlock + n)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + n)]))
            }
            h.file.blocks[index] = b
            done += n
            h.file.size = max(h.file.size, at + UInt64(n))
        }
        return SQLITE_OK
    }
}
