/// The page at `/`: plain HTML, CSS and a little JavaScript, shipped inside the binary.
/// Each source's picture reloads itself (latest.jpg, a new one as soon as the last has loaded and 200 ms passed),
/// and the status line under it polls /api/sources every second; the recent events below (/api/events) link to
/// their snapshots.
enum Page {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Sightline</title>
    <style>
      body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #15171a; color: #e8e8e8; }
      header { padding: 10px 16px; background: #202328; display: flex; gap: 16px; align-items: baseline; }
      header h1 { font-size: 18px; margin: 0; }
      header a { color: #8ab4f8; }
      main { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; padding: 16px; }
      .source { background: #202328; border-radius: 6px; overflow: hidden; }
      .source img { width: 100%; display: block; background: #000; min-height: 120px; }
      .source .status { padding: 8px 12px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
      .name { font-weight: 600; }
      .state { padding: 0 6px; border-radius: 3px; }
      .up { background: #1e6b34; } .down { background: #8a1f1f; } .opening, .finished { background: #555; }
      #empty { padding: 16px; }
      #events { padding: 0 16px 16px; } #events a { color: #8ab4f8; }
    </style>
    </head>
    <body>
    <header><h1>Sightline</h1><span id="health"></span><a href="/metrics">metrics</a><a href="/api/sources">api</a></header>
    <main id="sources"></main>
    <div id="empty" hidden>No sources configured.</div>
    <section id="events"></section>
    <script>
    "use strict";
    const cards = new Map();
    function card(name) {
      if (cards.has(name)) return cards.get(name);
      const div = document.createElement("div");
      div.className = "source";
      const img = document.createElement("img");
      img.alt = name;
      const status = document.createElement("div");
      status.className = "status";
      div.append(img, status);
      document.getElementById("sources").append(div);
      const url = "/sources/" + encodeURIComponent(name) + "/latest.jpg";
      const next = () => setTimeout(() => { img.src = url + "?t=" + Date.now(); }, 200);
      img.onload = next;
      img.onerror = () => setTimeout(next, 1000);
      next();
      const entry = { div, status };
      cards.set(name, entry);
      return entry;
    }
    function cell(text, className) {
      const span = document.createElement("span");
      span.textContent = text;
      if (className) span.className = className;
      return span;
    }
    async function refresh() {
      try {
        const sources = await (await fetch("/api/sources")).json();
        document.getElementById("empty").hidden = sources.length > 0;
        for (const s of sources) {
          const { status } = card(s.name);
          const cells = [cell(s.name, "name"), cell(s.state, "state " + s.state), cell(s.fps.toFixed(1) + " fps"),
                         cell(s.dropped_total + " dropped")];
          if (s.latency_ms !== undefined) cells.push(cell("latency " + s.latency_ms + " ms"), cell(s.objects + " objects"));
          if (s.reconnects) cells.push(cell(s.reconnects + " reconnects"));
          if (s.reason) cells.push(cell(s.reason));
          status.replaceChildren(...cells);
        }
        const events = (await (await fetch("/api/events?limit=10")).json()).reverse();
        document.getElementById("events").replaceChildren(...events.map(e => {
          const line = document.createElement("div");
          line.append(cell(e.time + " " + e.source + " " + e.label + " #" + e.track_id + " " + (e.type === "object_start" ? "appeared" : "left") + " "));
          if (e.snapshot) {
            const link = document.createElement("a");
            link.href = e.snapshot;
            link.textContent = "snapshot";
            line.append(link);
          }
          return line;
        }));
        const health = await fetch("/healthz");
        document.getElementById("health").textContent = health.ok ? "healthy" : (await health.text()).trim();
      } catch (error) {
        document.getElementById("health").textContent = "daemon unreachable";
      }
    }
    refresh();
    setInterval(refresh, 1000);
    </script>
    </body>
    </html>
    """#
}
