package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var fleetOn = func(host string) Repository {
	return Repository{
		FullName: "platform/fleet",
		HTTPURL:  "https://" + host + "/platform/fleet.git",
		SSHURL:   "git@" + host + ":platform/fleet.git",
	}
}

func TestParse(t *testing.T) {
	gitlabSigned := signedStd([]byte("k"), nil, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1)
	gitlabSigned.Set("Idempotency-Key", gitlabDelivery)
	gitlabOld := signed(GitLab, []byte(canary), nil, "")
	gitlabOld.Del("Idempotency-Key")

	tests := []struct {
		name     string
		provider string
		headers  http.Header
		body     []byte
		want     *Push
	}{
		{
			name:     "github push lists every file its commits touch, once",
			provider: GitHub,
			body:     readTestdata(t, "github-push.json"),
			want: &Push{
				Provider:   GitHub,
				Delivery:   githubDelivery,
				Repository: fleetOn("github.com"),
				Ref:        "refs/heads/main",
				Before:     "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
				After:      "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
				Changed:    []string{"instances/billing-db.yaml", "instances/legacy-db.yaml", "instances/orders-db.yaml"},
			},
		},
		{
			name:     "github forced push is truncated",
			provider: GitHub,
			body:     readTestdata(t, "github-push-forced.json"),
			want: &Push{
				Provider:   GitHub,
				Delivery:   githubDelivery,
				Repository: fleetOn("github.com"),
				Ref:        "refs/heads/main",
				Before:     "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
				After:      "8e5ab1c2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8",
				Changed:    []string{"policies/ssl.rego"},
				Truncated:  true,
			},
		},
		{
			name:     "gitlab push is identified by its idempotency key",
			provider: GitLab,
			body:     readTestdata(t, "gitlab-push.json"),
			want: &Push{
				Provider:   GitLab,
				Delivery:   gitlabDelivery,
				Repository: fleetOn("gitlab.example.com"),
				Ref:        "refs/heads/main",
				Before:     "95790bf891e76fee5e1747ab589903a6a1f80f22",
				After:      "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
				Changed:    []string{"instances/billing-db.yaml", "instances/orders-db.yaml"},
			},
		},
		{
			name:     "gitlab push counting more commits than it lists is truncated",
			provider: GitLab,
			body:     readTestdata(t, "gitlab-push-truncated.json"),
			want: &Push{
				Provider:   GitLab,
				Delivery:   gitlabDelivery,
				Repository: fleetOn("gitlab.example.com"),
				Ref:        "refs/heads/main",
				Before:     "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
				After:      "c5feabde2d8cd023215af4d2ceeb7a64839fc428",
				Changed:    []string{"instances/billing-db.yaml", "instances/orders-db.yaml"},
				Truncated:  true,
			},
		},
		{
			name:     "gitlab before 17.4 is identified by its event UUID",
			provider: GitLab,
			headers:  gitlabOld,
			body:     readTestdata(t, "gitlab-push.json"),
			want: &Push{
				Provider:   GitLab,
				Delivery:   "13792a34-cac6-4fda-95a8-c58e00a3954e",
				Repository: fleetOn("gitlab.example.com"),
				Ref:        "refs/heads/main",
				Before:     "95790bf891e76fee5e1747ab589903a6a1f80f22",
				After:      "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
				Changed:    []string{"instances/billing-db.yaml", "instances/orders-db.yaml"},
			},
		},
		{
			name:     "gitlab signed push is identified by its signed webhook-id",
			provider: GitLab,
			headers:  gitlabSigned,
			body:     readTestdata(t, "gitlab-push.json"),
			want: &Push{
				Provider:   GitLab,
				Delivery:   "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
				Repository: fleetOn("gitlab.example.com"),
				Ref:        "refs/heads/main",
				Before:     "95790bf891e76fee5e1747ab589903a6a1f80f22",
				After:      "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
				Changed:    []string{"instances/billing-db.yaml", "instances/orders-db.yaml"},
			},
		},
		{
			name:     "gitea push",
			provider: Gitea,
			body:     readTestdata(t, "gitea-push.json"),
			want: &Push{
				Provider:   Gitea,
				Delivery:   giteaDelivery,
				Repository: fleetOn("gitea.example.com"),
				Ref:        "refs/heads/main",
				Before:     "28e1879d029cb852e4844d9c718537df08844e03",
				After:      "bffeb74224043ba2feb48d137756c8a9331c449a",
				Changed:    []string{"instances/orders-db.yaml", "policies/ssl.rego"},
			},
		},
		{
			name:     "gitea push listing fewer commits than it counts is truncated",
			provider: Gitea,
			body:     []byte(`{"ref":"refs/heads/main","before":"` + hash('1') + `","after":"` + hash('2') + `","total_commits":7,"commits":[{"added":[],"removed":[],"modified":["a.yaml"]}],"repository":{"full_name":"platform/fleet"}}`),
			want: &Push{
				Provider: Gitea, Delivery: giteaDelivery, Repository: Repository{FullName: "platform/fleet"},
				Ref: "refs/heads/main", Before: hash('1'), After: hash('2'), Changed: []string{"a.yaml"}, Truncated: true,
			},
		},
		{
			name:     "a new branch at an existing commit lists nothing and is truncated",
			provider: GitHub,
			body:     []byte(`{"ref":"refs/heads/ssl","before":"` + hash('0') + `","after":"` + hash('a') + `","created":true,"commits":[],"repository":{"full_name":"platform/fleet"}}`),
			want: &Push{
				Provider: GitHub, Delivery: githubDelivery, Repository: Repository{FullName: "platform/fleet"},
				Ref: "refs/heads/ssl", Before: hash('0'), After: hash('a'), Truncated: true,
			},
		},
		{
			name:     "a deleted branch changes nothing and is not truncated",
			provider: GitHub,
			body:     []byte(`{"ref":"refs/heads/ssl","before":"` + hash('a') + `","after":"` + hash('0') + `","deleted":true,"commits":[],"repository":{"full_name":"platform/fleet"}}`),
			want: &Push{
				Provider: GitHub, Delivery: githubDelivery, Repository: Repository{FullName: "platform/fleet"},
				Ref: "refs/heads/ssl", Before: hash('a'), After: hash('0'),
			},
		},
		{
			name:     "a commit without file lists truncates",
			provider: GitHub,
			body:     []byte(`{"ref":"refs/heads/main","before":"` + hash('1') + `","after":"` + hash('2') + `","commits":[{"id":"x"},{"modified":["b.yaml"]}],"repository":{"full_name":"platform/fleet"}}`),
			want: &Push{
				Provider: GitHub, Delivery: githubDelivery, Repository: Repository{FullName: "platform/fleet"},
				Ref: "refs/heads/main", Before: hash('1'), After: hash('2'), Changed: []string{"b.yaml"}, Truncated: true,
			},
		},
		{
			name:     "paths no tree could hold are dropped and truncate",
			provider: GitHub,
			body:     []byte(`{"ref":"refs/heads/main","before":"` + hash('1') + `","after":"` + hash('2') + `","commits":[{"modified":["../etc/passwd","/abs","","ok.yaml","a//b"]}],"repository":{"full_name":"platform/fleet"}}`),
			want: &Push{
				Provider: GitHub, Delivery: githubDelivery, Repository: Repository{FullName: "platform/fleet"},
				Ref: "refs/heads/main", Before: hash('1'), After: hash('2'), Changed: []string{"ok.yaml"}, Truncated: true,
			},
		},
		{
			name:     "hashes are lowercased and sha256 hashes accepted",
			provider: GitHub,
			body:     []byte(`{"ref":"refs/heads/main","before":"` + strings.Repeat("AB", 32) + `","after":"` + strings.Repeat("cd", 32) + `","commits":[{"added":["x"]}],"repository":{"full_name":"platform/fleet"}}`),
			want: &Push{
				Provider: GitHub, Delivery: githubDelivery, Repository: Repository{FullName: "platform/fleet"},
				Ref: "refs/heads/main", Before: strings.Repeat("ab", 32), After: strings.Repeat("cd", 32), Changed: []string{"x"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.headers
			if h == nil {
				h = signed(tt.provider, []byte(canary), tt.body, deliveryFor(tt.provider))
			}
			got, err := Parse(tt.provider, h, tt.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func hash(c byte) string { return strings.Repeat(string(c), 40) }

func TestParseRefusals(t *testing.T) {
	push := `{"ref":"refs/heads/main","before":"` + hash('1') + `","after":"` + hash('2') + `","commits":[],"repository":{"full_name":"platform/fleet"}}`
	with := func(provider, body string, edit func(http.Header)) http.Header {
		h := signed(provider, []byte(canary), []byte(body), deliveryFor(provider))
		if edit != nil {
			edit(h)
		}
		return h
	}
	tests := []struct {
		name     string
		provider string
		body     string
		edit     func(http.Header)
		want     Reason
	}{
		{"github event other than push", GitHub, push, func(h http.Header) { h.Set("X-GitHub-Event", "issues") }, ReasonUnsupportedEvent},
		{"gitlab tag push", GitLab, push, func(h http.Header) { h.Set("X-Gitlab-Event", "Tag Push Hook") }, ReasonUnsupportedEvent},
		{"gitlab push hook whose object is not a push", GitLab, `{"object_kind":"tag_push"}`, nil, ReasonUnsupportedEvent},
		{"gitea event other than push", Gitea, push, func(h http.Header) { h.Set("X-Gitea-Event", "create") }, ReasonUnsupportedEvent},
		{"provider parse does not know", "bitbucket", push, nil, ReasonUnsupportedEvent},
		{"github garbage json", GitHub, `{"ref": "refs/heads/main", garbage`, nil, ReasonMalformed},
		{"gitlab garbage json", GitLab, `not json at all`, nil, ReasonMalformed},
		{"gitea json of the wrong shape", Gitea, `{"commits": "many"}`, nil, ReasonMalformed},
		{"json with trailing garbage", GitHub, push + `}`, nil, ReasonMalformed},
		{"missing event header", GitHub, push, func(h http.Header) { h.Del("X-GitHub-Event") }, ReasonMalformed},
		{"missing delivery", GitHub, push, func(h http.Header) { h.Del("X-GitHub-Delivery") }, ReasonMalformed},
		{"two deliveries", Gitea, push, func(h http.Header) { h.Add("X-Gitea-Delivery", "other") }, ReasonMalformed},
		{"delivery with spaces", GitHub, push, func(h http.Header) { h.Set("X-GitHub-Delivery", "a b") }, ReasonMalformed},
		{"delivery too long", GitHub, push, func(h http.Header) { h.Set("X-GitHub-Delivery", strings.Repeat("a", 129)) }, ReasonMalformed},
		{"gitlab without any delivery id", GitLab, push, func(h http.Header) { h.Del("Idempotency-Key"); h.Del("X-Gitlab-Event-UUID") }, ReasonMalformed},
		{"ref that is not a full ref", GitHub, strings.Replace(push, "refs/heads/main", "main", 1), nil, ReasonMalformed},
		{"ref git would refuse", GitHub, strings.Replace(push, "refs/heads/main", "refs/heads/--upload-pack=x y", 1), nil, ReasonMalformed},
		{"ref climbing out", GitHub, strings.Replace(push, "refs/heads/main", "refs/heads/../../x", 1), nil, ReasonMalformed},
		{"before that is not a hash", GitHub, strings.Replace(push, hash('1'), "HEAD~1", 1), nil, ReasonMalformed},
		{"after of the wrong length", GitLab, strings.Replace(push, hash('2'), "2222", 1), nil, ReasonMalformed},
		{"no repository", GitHub, strings.Replace(push, `"full_name":"platform/fleet"`, `"name":"fleet"`, 1), nil, ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if tt.provider == GitLab && strings.HasPrefix(body, `{"ref"`) {
				body = `{"object_kind":"push",` + body[1:]
			}
			h := with(tt.provider, body, tt.edit)
			p, err := Parse(tt.provider, h, []byte(body))
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Parse = %+v, %v; want a refusal", p, err)
			}
			if e.Reason != tt.want {
				t.Errorf("Reason = %s (%v), want %s", e.Reason, e, tt.want)
			}
			if p != nil {
				t.Errorf("Parse returned a push with its refusal: %+v", p)
			}
		})
	}
}

func TestParsePing(t *testing.T) {
	body := readTestdata(t, "github-ping.json")
	h := signed(GitHub, []byte(canary), body, githubDelivery)
	h.Set("X-GitHub-Event", "ping")
	p, err := Parse(GitHub, h, body)
	if !errors.Is(err, ErrPing) || p != nil {
		t.Errorf("Parse(ping) = %v, %v; want nil, ErrPing", p, err)
	}
}
